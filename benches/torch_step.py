#!/usr/bin/python3
"""PyTorch side of bench_step: the same network, step and line format.

    /usr/bin/python3 benches/torch_step.py [--batch N] [--dtype f32|f64]
        [--threads N] [--seconds S] [--zero-grad none|zero] [--overhead]
        [--config]

The network is the MLP 784-256-128-10 with ReLU as nn.Linear layers
(PyTorch stores W as out x in and computes X.W^T + b: the same math as
tapegrad's X.W + b with W in x out). One step = forward, F.cross_entropy on
integer labels, backward, torch.optim.SGD(lr=0.01) step, zero_grad. Random
data from a fixed seed that stays the same from step to step. The input X
does not require grad, so backward makes the same 8 GEMMs as tapegrad's.

floor_us: the step's 8 matrix products done directly with torch on tensors
of the same shapes, in this process, on the same threads (torch layout):
  forward   Z1 = X.W1^T, Z2 = A1.W2^T, Z3 = A2.W3^T        (torch.mm, out=)
  backward  dW3 += G3^T.A2, dA2 += G3.W3, dW2 += G2^T.A1,
            dA1 += G2.W2, dW1 += G1^T.X                      (addmm_, beta 1)
At batch 1 the floor uses mv / addmv_ / addr_ (BLAS gemv/ger), as the C
bench does.

Threads: torch (ATen, OpenMP) runs on 1 thread (torch.set_num_threads(1),
OMP_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE); the matrix products go to
OpenBLAS (Debian's torch 1.13 is built with BLAS_INFO=generic and links
libblas.so.3 -> openblas-pthread), whose thread count is read from
OPENBLAS_NUM_THREADS when the library loads. So for each --threads value
this script runs itself again in a child process with that environment
(unless it already has exactly it). Two thread pools on 2 cores fight: one
threading layer, OpenBLAS's, is the best setting on this machine.

--overhead: instead of the step, the tape-overhead chain of bench_overhead
(100 torch.tanh on a 16-element float32 tensor with requires_grad, sum,
backward), printing `overhead us_per_op=<x> ...`.

Output, one line per configuration:
  step batch=128 dtype=f32 threads=2 us=<median> floor_us=<median> ratio=<us/floor_us>
"""

import argparse
import os
import subprocess
import sys
import time

BATCHES = [1, 32, 128, 1024]
DTYPES = ["f32", "f64"]
THREADS = [1, 2]
D0, D1, D2, D3 = 784, 256, 128, 10


def child_env(threads):
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def env_is_for(threads):
    e = os.environ
    return (e.get("OPENBLAS_NUM_THREADS") == str(threads)
            and e.get("OMP_NUM_THREADS") == "1"
            and e.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE")


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def warm_up(fn, seconds=0.1):
    runs = 0
    t0 = time.perf_counter()
    t = t0
    while runs < 3 or t - t0 < seconds:
        fn()
        runs += 1
        t = time.perf_counter()
    return (t - t0) / runs


def reps_for(per_run, seconds):
    return int(min(max(seconds / max(per_run, 1e-9), 15), 1e6))


def time_runs(fn, n, out):
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)


def blas_threads():
    """OpenBLAS's own thread count, as torch's BLAS sees it (or None)."""
    import ctypes
    try:
        return ctypes.CDLL("libblas.so.3").openblas_get_num_threads()
    except (OSError, AttributeError):
        return None


def make_step(torch, batch, dtype, zero_grad):
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(42)
    model = nn.Sequential(nn.Linear(D0, D1), nn.ReLU(), nn.Linear(D1, D2), nn.ReLU(),
                          nn.Linear(D2, D3)).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(batch, D0, dtype=dtype)
    y = torch.randint(0, D3, (batch,))
    set_to_none = zero_grad == "none"
    state = {}

    def step():
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        state["loss"] = loss

    return step, state


def make_floor(torch, batch, dtype):
    g = torch.Generator().manual_seed(43)

    def r(*shape, scale=1.0):
        return (torch.rand(*shape, generator=g, dtype=dtype) - 0.5) * scale

    x = r(batch, D0)
    w1, w2, w3 = r(D1, D0, scale=0.1), r(D2, D1, scale=0.1), r(D3, D2, scale=0.1)
    z1, z2, z3 = (torch.zeros(batch, d, dtype=dtype) for d in (D1, D2, D3))
    g3, g2, g1 = r(batch, D3, scale=0.01), r(batch, D2, scale=0.01), r(batch, D1, scale=0.01)
    da2, da1 = torch.zeros(batch, D2, dtype=dtype), torch.zeros(batch, D1, dtype=dtype)
    dw1, dw2, dw3 = (torch.zeros_like(w) for w in (w1, w2, w3))
    mm = torch.mm

    if batch == 1:
        xv, z1v, z2v, z3v = x[0], z1[0], z2[0], z3[0]
        g3v, g2v, g1v, da2v, da1v = g3[0], g2[0], g1[0], da2[0], da1[0]
        mv = torch.mv

        def floor():
            with torch.no_grad():
                mv(w1, xv, out=z1v)
                mv(w2, z1v, out=z2v)
                mv(w3, z2v, out=z3v)
                dw3.addr_(g3v, z2v)
                da2v.addmv_(w3.t(), g3v)
                dw2.addr_(g2v, z1v)
                da1v.addmv_(w2.t(), g2v)
                dw1.addr_(g1v, xv)
    else:
        def floor():
            with torch.no_grad():
                mm(x, w1.t(), out=z1)
                mm(z1, w2.t(), out=z2)
                mm(z2, w3.t(), out=z3)
                dw3.addmm_(g3.t(), z2)
                da2.addmm_(g3, w3)
                dw2.addmm_(g2.t(), z1)
                da1.addmm_(g2, w2)
                dw1.addmm_(g1.t(), x)

    return floor


def run_step(torch, batch, dname, threads, seconds, zero_grad):
    import math
    dtype = torch.float32 if dname == "f32" else torch.float64
    step, state = make_step(torch, batch, dtype, zero_grad)
    floor = make_floor(torch, batch, dtype)
    ns = reps_for(warm_up(step), seconds)
    nf = reps_for(warm_up(floor), seconds)
    ss, sf = [], []
    rounds = 10
    for k in range(rounds):
        time_runs(step, ns * (k + 1) // rounds - ns * k // rounds, ss)
        time_runs(floor, nf * (k + 1) // rounds - nf * k // rounds, sf)
    us, fus = 1e6 * median(ss), 1e6 * median(sf)
    loss = float(state["loss"])
    if not math.isfinite(loss):
        print(f"torch_step: the loss became {loss}", file=sys.stderr)
    print(f"step batch={batch} dtype={dname} threads={threads} us={us:.1f} "
          f"floor_us={fus:.1f} ratio={us / fus:.3f}", flush=True)


def run_overhead(torch, threads, seconds, ops=100, length=16):
    torch.manual_seed(7)
    p = torch.randn(length, dtype=torch.float32, requires_grad=True)
    tanh = torch.tanh

    def step():
        h = p
        for _ in range(ops):
            h = tanh(h)
        h.sum().backward()

    n = max(100, reps_for(warm_up(step, 0.2), seconds))
    s = []
    time_runs(step, n, s)
    step_us = 1e6 * median(s)
    print(f"overhead us_per_op={step_us / ops:.4f} step_us={step_us:.2f} ops={ops} "
          f"len={length} dtype=f32 impl=torch threads={threads}", flush=True)


def run_here(args, threads):
    import torch
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set
    bt = blas_threads()
    if bt is not None and bt != threads:
        print(f"torch_step: warning: OpenBLAS reports {bt} threads, wanted {threads}",
              file=sys.stderr)
    if args.config:
        print(torch.__config__.show(), file=sys.stderr)
        print(torch.__config__.parallel_info(), file=sys.stderr)
        print(f"torch {torch.__version__}; OpenBLAS threads {bt}", file=sys.stderr)
    if args.overhead:
        run_overhead(torch, threads, args.seconds)
        return 0
    for b in ([args.batch] if args.batch else BATCHES):
        for d in ([args.dtype] if args.dtype else DTYPES):
            run_step(torch, b, d, threads, args.seconds, args.zero_grad)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int)
    ap.add_argument("--dtype", choices=DTYPES)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seconds", type=float, default=0.5,
                    help="timed seconds for the step, and again for the floor (0.5)")
    ap.add_argument("--zero-grad", choices=["none", "zero"], default="none",
                    help="optimizer.zero_grad(set_to_none=True) (none, the faster) or False")
    ap.add_argument("--overhead", action="store_true",
                    help="time the chain of 100 tanh on 16 floats instead")
    ap.add_argument("--config", action="store_true",
                    help="print torch's build configuration to stderr")
    args = ap.parse_args()
    if args.batch is not None and args.batch <= 0:
        ap.error("--batch must be positive")
    rc = 0
    for t in ([args.threads] if args.threads else THREADS):
        if t <= 0:
            ap.error("--threads must be positive")
        if env_is_for(t):
            rc |= run_here(args, t)
            continue
        # OpenBLAS reads its thread count at load: run in a fresh process
        cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(t),
               "--seconds", str(args.seconds), "--zero-grad", args.zero_grad]
        if args.batch:
            cmd += ["--batch", str(args.batch)]
        if args.dtype:
            cmd += ["--dtype", args.dtype]
        if args.overhead:
            cmd.append("--overhead")
        if args.config:
            cmd.append("--config")
        sys.stdout.flush()
        rc |= subprocess.call(cmd, env=child_env(t))
    return rc


if __name__ == "__main__":
    sys.exit(main())
