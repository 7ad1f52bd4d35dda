#!/usr/bin/python3
"""PyTorch side of bench_hvp (issue 18): one Hessian-vector product by double
backward against one gradient, on the MLP 784-256-128-10 with ReLU and
F.cross_entropy on integer labels (bench_mlp.h's network as nn.Linear
layers), random data from a fixed seed.

    /usr/bin/python3 benches/torch_hvp.py [--batch N] [--dtype f32|f64] [--seconds S]

  grad: forward + loss + torch.autograd.grad(loss, params)
  hvp:  forward + loss + g = grad(loss, params, create_graph=True)
        + grad(sum_i <g_i, v_i>, params)       (the standard double-backward HVP)
in 10 alternating rounds, every repetition timed on its own (wall clock
time.perf_counter and process CPU time time.process_time), medians:

  torch_hvp batch=128 dtype=f32 threads=1 grad_us=.. hvp_us=.. ratio=..
      cpu_grad_us=.. cpu_hvp_us=.. cpu_ratio=..

One thread: torch.set_num_threads(1) and OpenBLAS (Debian's torch 1.13 links
libblas.so.3 -> openblas) on one thread: the script re-runs itself with
OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1 unless they are set, as
torch_step.py does. The CPU-time figures are the ones to compare on a loaded
machine (see bench_hvp.c).
"""

import argparse
import os
import subprocess
import sys
import time

D0, D1, D2, D3 = 784, 256, 128, 10


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1" or os.environ.get("OMP_NUM_THREADS") != "1":
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
        sys.exit(subprocess.call([sys.executable] + sys.argv, env=env))
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(1)
    dtype = torch.float32 if a.dtype == "f32" else torch.float64
    torch.manual_seed(42)
    model = nn.Sequential(nn.Linear(D0, D1), nn.ReLU(), nn.Linear(D1, D2), nn.ReLU(),
                          nn.Linear(D2, D3)).to(dtype)
    params = list(model.parameters())
    x = torch.rand(a.batch, D0, dtype=dtype)
    y = torch.randint(0, D3, (a.batch,))
    v = [torch.randn_like(p) for p in params]

    def grad():
        loss = F.cross_entropy(model(x), y)
        return torch.autograd.grad(loss, params)

    def hvp():
        loss = F.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
        return torch.autograd.grad(dot, params)

    fns = [grad, hvp]
    for fn in fns:  # warm-up
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.1:
            fn()
    wall = [[], []]
    cpu = [[], []]
    for _ in range(10):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            reps = 0
            while time.perf_counter() - t0 < a.seconds / 10 or reps < 2:
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                cpu[k].append(time.process_time() - c0)
                wall[k].append(time.perf_counter() - w0)
                reps += 1
    w = [1e6 * median(t) for t in wall]
    c = [1e6 * median(t) for t in cpu]
    print("torch_hvp batch=%d dtype=%s threads=1 grad_us=%.1f hvp_us=%.1f ratio=%.2f "
          "cpu_grad_us=%.1f cpu_hvp_us=%.1f cpu_ratio=%.2f"
          % (a.batch, a.dtype, w[0], w[1], w[1] / w[0], c[0], c[1], c[1] / c[0]))


if __name__ == "__main__":
    main()
