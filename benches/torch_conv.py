#!/usr/bin/python3
"""PyTorch side of bench_conv: the same layers, step and line format.

    /usr/bin/python3 benches/torch_conv.py [--threads N] [--dtype f32|f64] [--seconds S]
                                           [--layer c1|maxpool2|c2|c3]

One iteration = F.conv2d(x, w, b) (torch.nn.Conv2d's math, NCHW) and
y.backward(ones) with x, w, b requiring grad (both r-maps and the bias's),
the gradients set to None between iterations. Debian's torch 1.13 runs
convolutions through oneDNN (mkldnn) on its OpenMP threads: the script runs
itself again in a child with OMP_NUM_THREADS=N and torch.set_num_threads(N)
(OPENBLAS_NUM_THREADS=N too, for any BLAS call). max_pool2d 2 on
128x32x26x26 is timed as its own line (F.max_pool2d + backward), as in
bench_conv. --layer runs one line only.

Output, one line per layer:
  torch layer=c1 dtype=f32 threads=1 us=<median> gflops=<3 x forward flops / time>
"""

import argparse
import time

from torch_common import run_with_threads

LAYERS = [("c1", 128, 1, 28, 28, 32, 3, 0),
          ("c2", 128, 32, 13, 13, 64, 3, 0),
          ("c3", 32, 64, 32, 32, 64, 3, 1)]


def median_us(fn, seconds):
    fn()
    v = []
    t0 = time.perf_counter()
    while len(v) < 5 or (time.perf_counter() - t0 < seconds and len(v) < 2000):
        a = time.perf_counter()
        fn()
        v.append(1e6 * (time.perf_counter() - a))
    v.sort()
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def on_threads(n):
    """torch on n threads (torch_common.run_with_threads: this script again
    in a child with OMP_NUM_THREADS=n unless it is that child), then
    torch.set_num_threads(n). Also used by torch_attention.py."""
    run_with_threads(n)
    import torch
    torch.set_num_threads(n)
    return torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f64"])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--layer", default=None, help="run this line only")
    a = ap.parse_args()
    torch = on_threads(a.threads)
    torch.manual_seed(15)
    dt = torch.float32 if a.dtype == "f32" else torch.float64
    for (name, n, c, h, w, o, k, pad) in LAYERS:
        if a.layer in (None, name):
            conv_line(a, dt, name, n, c, h, w, o, k, pad)
        if name == "c1" and a.layer in (None, "maxpool2"):
            pool_line(a, dt)


def conv_line(a, dt, name, n, c, h, w, o, k, pad):
    import torch
    import torch.nn.functional as F
    x = (0.1 * torch.randn(n, c, h, w, dtype=dt)).requires_grad_()
    wt = (0.1 * torch.randn(o, c, k, k, dtype=dt)).requires_grad_()
    b = (0.1 * torch.randn(o, dtype=dt)).requires_grad_()
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    seed = torch.ones(n, o, oh, ow, dtype=dt)

    def step():
        x.grad = wt.grad = b.grad = None
        y = F.conv2d(x, wt, b, padding=pad)
        y.backward(seed)

    us = median_us(step, a.seconds)
    gf = 3 * 2.0 * n * o * oh * ow * c * k * k / (us * 1e3)
    print(f"torch layer={name} dtype={a.dtype} threads={a.threads} us={us:.1f} gflops={gf:.2f}",
          flush=True)


def pool_line(a, dt):
    import torch
    import torch.nn.functional as F
    p = (0.1 * torch.randn(128, 32, 26, 26, dtype=dt)).requires_grad_()
    ps = torch.ones(128, 32, 13, 13, dtype=dt)

    def pool():
        p.grad = None
        F.max_pool2d(p, 2).backward(ps)

    us = median_us(pool, a.seconds)
    print(f"torch layer=maxpool2 dtype={a.dtype} threads={a.threads} us={us:.1f}", flush=True)


if __name__ == "__main__":
    main()
