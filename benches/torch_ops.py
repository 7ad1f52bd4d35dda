#!/usr/bin/python3
"""PyTorch side of bench_ops: the same ops, shapes and line format.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 benches/torch_ops.py
        [--seconds S] [--only OPNAME]
    /usr/bin/python3 benches/torch_ops.py --compare OURS... --against TORCH...

Each recipe mirrors one of benches/bench_ops.c (op, case, shape, traffic:
keep them in step): inputs that carry a derivative have requires_grad,
targets, labels, indices and masks do not (masks are bool, torch's type);
one step is the forward and y.backward(ζ) with a fixed random ζ of y's shape,
then every input's .grad is set to None (zero_grad(set_to_none=True), torch's
cheapest way: the next backward writes a fresh gradient). Constant results
(one_hot, argmax, detach) are timed forward only. Movement ops that torch
makes as views (reshape, flatten, squeeze, unsqueeze, permute, slice,
broadcast_to, detach) are timed as torch runs them: views, no copy.
1 thread: torch.set_num_threads(1); the script re-runs itself with
OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1 if they are not set.

Line format (as bench_ops):
  op=<name> case=<variant> shape=<s> us=<median µs per step> fwd_us=<median
  forward µs> traffic=<formula> bytes=<b> GBps=<bytes/us/1e3> triad=<-|frac>

--compare joins files of bench_ops lines (OURS) with files of these lines
(TORCH), several rounds each (the median of each side's medians per line),
and prints a Markdown table with the ratio ours/torch (< 1: tapegrad faster).
"""

import argparse
import os
import statistics
import sys
import time


def env_ok():
    e = os.environ
    return e.get("OMP_NUM_THREADS") == "1" and e.get("OPENBLAS_NUM_THREADS") == "1"


R = 1024
N = R * R
M = 1 << 18


def recipes(torch, F):
    """(op, case, shape, inputs, fn, elems, traffic, elementwise); inputs are
    (shape, domain, grad) with domain real/prob/pos/binary/simplex or
    ('label', classes)."""
    mat = lambda d="real": ((R, R), d, True)
    vec = lambda d="real": ((R,), d, True)
    cmat = lambda d: ((R, R), d, False)
    labels = lambda n, c: ((n,), ("label", c), False)
    qkv = ((32, 4, 64, 32), "real", True)
    sco = ((32, 4, 64, 64), "real", True)
    out = []

    def add(op, case, shape, ins, fn, elems, traffic, ew):
        out.append((op, case, shape, ins, fn, elems, traffic, ew))

    def unary(op, fn, dom="real", case="-"):
        add(op, case, "1024x1024", [mat(dom)], fn, 5 * N, "5N", True)

    def binary(op, fn, d0="real", d1="real"):
        add(op, "-", "1024x1024", [mat(d0), mat(d1)], fn, 8 * N, "8N", True)

    def bcast(op, fn, d0="real", d1="real"):
        add(op, "bcast", "1024x1024,1024", [mat(d0), vec(d1)], fn, 5 * N, "5N", True)

    def rowred(op, fn):
        add(op, "-", "1024x1024:-1", [mat()], fn, 3 * N, "3N", False)

    def loss2(op, fn, d0="real", d1="real"):
        add(op, "-", "1024x1024", [mat(d0), cmat(d1)], fn, 5 * N, "5N", True)

    add("matmul", "-", "512x512x512", [((512, 512), "real", True)] * 2,
        lambda a, b: a @ b, 7 * 512 * 512, "7*512^2", False)
    add("batched_matmul", "QKt", "32x4x64x32", [qkv, qkv],
        lambda q, k: q @ k.transpose(-1, -2), 10 * M, "6M+2S", False)
    add("batched_matmul", "PV", "32x4x64x64,32x4x64x32", [sco, qkv],
        lambda p, v: p @ v, 13 * M, "5M+4S", False)
    bcast("bias_add", lambda x, b: x + b)
    unary("sigmoid", torch.sigmoid)
    unary("tanh", torch.tanh)
    unary("relu", torch.relu)
    unary("leaky_relu", lambda x: F.leaky_relu(x, 0.01))
    add("softmax", "-", "1024x1024:-1", [mat()], lambda x: torch.softmax(x, -1),
        5 * N, "5N", False)
    bcast("bias_sigmoid", lambda x, b: torch.sigmoid(x + b))
    bcast("bias_tanh", lambda x, b: torch.tanh(x + b))
    bcast("bias_relu", lambda x, b: torch.relu(x + b))
    bcast("bias_leaky_relu", lambda x, b: F.leaky_relu(x + b, 0.01))
    add("add", "-", "1024x1024", [mat(), mat()], torch.add, 6 * N, "6N", True)
    add("add", "bcast", "1024x1024,1024", [mat(), vec()], torch.add, 4 * N, "4N", True)
    add("sub", "-", "1024x1024", [mat(), mat()], torch.sub, 6 * N, "6N", True)
    add("sub", "bcast", "1024x1024,1024", [mat(), vec()], torch.sub, 4 * N, "4N", True)
    binary("mul", torch.mul)
    bcast("mul", torch.mul)
    add("scale", "-", "1024x1024", [mat()], lambda x: x * 0.5, 4 * N, "4N", True)
    add("sum", "-", "1024x1024", [mat()], torch.sum, 2 * N, "2N", False)
    add("mean", "-", "1024x1024", [mat()], torch.mean, 2 * N, "2N", False)
    add("sum_axis", "-", "1024x1024:1", [mat()], lambda x: x.sum(1), 2 * N, "2N", False)
    add("mean_axis", "-", "1024x1024:1", [mat()], lambda x: x.mean(1), 2 * N, "2N", False)
    loss2("bce", F.binary_cross_entropy, "prob", "prob")
    loss2("bce_logits", F.binary_cross_entropy_with_logits, "real", "prob")
    add("softmax_ce", "-", "1024x1024", [mat(), labels(R, R)], F.cross_entropy,
        3 * N, "3N", False)
    add("softmax_ce_onehot", "-", "1024x1024", [mat(), cmat("simplex")], F.cross_entropy,
        5 * N, "5N", False)
    loss2("sse", lambda f, y: F.mse_loss(f, y, reduction="sum"))
    loss2("mse", F.mse_loss)
    add("l2", "-", "1024x1024", [mat()], lambda w: (0.01 / 2) * (w * w).sum(), 3 * N, "3N", True)
    add("l1", "-", "1024x1024", [mat()], lambda w: (0.01 / 2) * w.abs().sum(), 3 * N, "3N", True)
    add("reshape", "-", "1024x1024", [mat()], lambda x: x.reshape(-1), 4 * N, "4N", False)
    add("flatten", "-", "1024x1024", [mat()], torch.flatten, 4 * N, "4N", False)
    add("squeeze", "-", "1024x1x1024", [((R, 1, R), "real", True)], lambda x: x.squeeze(1),
        4 * N, "4N", False)
    add("unsqueeze", "-", "1024x1024", [mat()], lambda x: x.unsqueeze(1), 4 * N, "4N", False)
    add("permute", "T", "1024x1024", [mat()], lambda x: x.permute(1, 0), 4 * N, "4N", False)
    add("permute", "heads", "32x64x4x32", [((32, 64, 4, 32), "real", True)],
        lambda x: x.permute(0, 2, 1, 3), 4 * M, "4M", False)
    add("slice", "-", "1024x1024", [mat()], lambda x: x[:, 1:R - 1], 4 * R * (R - 2), "4N'", False)
    add("slice", "step2", "1024x2048", [((R, 2 * R), "real", True)], lambda x: x[:, ::2],
        5 * N, "5N", False)
    add("pad", "-", "1024x1022", [((R, R - 2), "real", True)], lambda x: F.pad(x, (1, 1)),
        4 * N, "4N", False)
    add("broadcast_to", "-", "1024", [vec()], lambda x: x.broadcast_to(R, R), 2 * N, "2N", False)
    add("concat", "-", "1024x512,1024x512:1", [((R, R // 2), "real", True)] * 2,
        lambda a, b: torch.cat([a, b], 1), 4 * N, "4N", False)
    add("stack", "-", "512x1024,512x1024:0", [((R // 2, R), "real", True)] * 2,
        lambda a, b: torch.stack([a, b], 0), 4 * N, "4N", False)
    add("gather", "-", "1024x1024,1024x256:1", [mat(), ((R, 256), ("label", R), False)],
        lambda x, i: torch.gather(x, 1, i), 6 * M, "6M", False)
    add("embedding", "-", "32768x256,4096", [((32768, 256), "real", True), labels(4096, 32768)],
        lambda w, i: F.embedding(i, w), 4 * N, "4N", False)
    add("where", "-", "1024x1024", [cmat("binary"), mat(), mat()], torch.where, 8 * N, "8N", True)
    add("masked_fill", "-", "1024x1024", [mat(), cmat("binary")],
        lambda x, m: x.masked_fill(m, float("-inf")), 6 * N, "6N", True)
    add("one_hot", "-", "1024:1024", [labels(R, R)], lambda l: F.one_hot(l, R), N, "N", False)
    add("argmax", "inner", "1024x1024:-1", [mat()], lambda x: x.argmax(-1), N, "N", False)
    add("argmax", "outer", "1024x1024:0", [mat()], lambda x: x.argmax(0), N, "N", False)
    add("dropout", "-", "1024x1024", [mat()], lambda x: F.dropout(x, 0.1, True), 4 * N, "4N", True)
    add("detach", "-", "1024x1024", [mat()], lambda x: x.detach(), 2 * N, "2N", False)
    rowred("amax", lambda x: x.amax(-1))
    rowred("amin", lambda x: x.amin(-1))
    rowred("logsumexp", lambda x: x.logsumexp(-1))
    rowred("var", lambda x: x.var(-1))
    rowred("std", lambda x: x.std(-1))
    rowred("norm", lambda x: torch.linalg.vector_norm(x, dim=-1))
    add("log_softmax", "-", "1024x1024:-1", [mat()], lambda x: torch.log_softmax(x, -1),
        5 * N, "5N", False)
    add("nll", "-", "1024x1024", [mat(), labels(R, R)], F.nll_loss, N, "N", False)
    add("cross_entropy", "-", "1024x1024", [mat(), labels(R, R)], F.cross_entropy,
        3 * N, "3N", False)
    loss2("huber", lambda x, y: F.huber_loss(x, y, delta=1.0))
    loss2("smooth_l1", lambda x, y: F.smooth_l1_loss(x, y, beta=1.0))
    loss2("kl_div", lambda x, y: F.kl_div(x, y, reduction="batchmean"), "real", "prob")
    binary("div", torch.div, "real", "pos")
    bcast("div", torch.div, "real", "pos")
    binary("pow", torch.pow, "pos", "real")
    bcast("pow", torch.pow, "pos", "real")
    binary("maximum", torch.maximum)
    bcast("maximum", torch.maximum)
    binary("minimum", torch.minimum)
    bcast("minimum", torch.minimum)
    add("neg", "-", "1024x1024", [mat()], torch.neg, 4 * N, "4N", True)
    unary("exp", torch.exp)
    unary("log", torch.log, "pos")
    unary("log1p", torch.log1p, "pos")
    unary("expm1", torch.expm1)
    unary("sqrt", torch.sqrt, "pos")
    unary("rsqrt", torch.rsqrt, "pos")
    unary("abs", torch.abs)
    unary("square", torch.square)
    unary("reciprocal", torch.reciprocal, "pos")
    unary("sin", torch.sin)
    unary("cos", torch.cos)
    unary("erf", torch.erf)
    unary("softplus", F.softplus)
    unary("gelu", F.gelu)
    unary("gelu", lambda x: F.gelu(x, approximate="tanh"), case="tanh")
    unary("silu", F.silu)
    unary("elu", F.elu)
    unary("clamp", lambda x: torch.clamp(x, -0.5, 0.5))
    unary("pow_scalar", lambda x: x ** 2.5, "pos")
    return out


def make_input(torch, shape, dom, grad, g):
    if isinstance(dom, tuple):  # ('label', classes): int64 indices
        return torch.randint(0, dom[1], shape, generator=g)
    if dom == "binary":
        return torch.randint(0, 2, shape, generator=g).bool()
    if dom == "prob":
        x = 0.05 + 0.9 * torch.rand(shape, generator=g)
    elif dom == "pos":
        x = 0.5 + 2.0 * torch.rand(shape, generator=g)
    elif dom == "simplex":
        x = 0.1 + torch.rand(shape, generator=g)
        x = x / x.sum(-1, keepdim=True)
    else:
        x = torch.randn(shape, generator=g)
    return x.requires_grad_(grad)


def median_us(fn, seconds):
    fn()  # warm-up
    samples = []
    t0 = time.perf_counter()
    while len(samples) < 400 and (len(samples) < 7 or time.perf_counter() - t0 < seconds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return 1e6 * statistics.median(samples)


def triad(torch, seconds):
    a, b, c = torch.zeros(N), torch.arange(N, dtype=torch.float32), torch.rand(N)
    us = median_us(lambda: torch.add(b, c, alpha=0.5, out=a), seconds)
    gbps = 12 * N / us / 1e3
    print(f"op=triad case=- shape=1048576 us={us:.1f} fwd_us={us:.1f} traffic=3N "
          f"bytes={12 * N} GBps={gbps:.2f} triad=1.00", flush=True)
    return gbps


def run(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(14)
    tri = triad(torch, args.seconds)
    for op, case, shape, ins, fn, elems, traffic, ew in recipes(torch, F):
        if args.only and op != args.only:
            continue
        xs = [make_input(torch, s, d, gr, g) for s, d, gr in ins]
        y = fn(*xs)
        backward = y.requires_grad
        seed = torch.randn(y.shape, generator=g) if backward else None

        def fwd():
            fn(*xs)

        def step():
            fn(*xs).backward(seed)
            for x in xs:
                x.grad = None

        f_us = median_us(fwd, args.seconds / 2)
        us = median_us(step, args.seconds) if backward else f_us
        nbytes = 4 * elems
        gbps = nbytes / us / 1e3
        frac = f"{gbps / tri:.2f}" if ew else "-"
        print(f"op={op} case={case} shape={shape} us={us:.1f} fwd_us={f_us:.1f} "
              f"traffic={traffic} bytes={nbytes} GBps={gbps:.2f} triad={frac}", flush=True)


def parse(files):
    """{(op, case): {field: [values]}} from files of lines."""
    rows = {}
    order = []
    for path in files:
        with open(path) as f:
            for line in f:
                kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
                if "us" not in kv:
                    continue
                key = (kv["op"], kv["case"])
                if key not in rows:
                    rows[key] = {"shape": kv["shape"], "traffic": kv["traffic"], "us": [],
                                 "GBps": [], "triad": []}
                    order.append(key)
                rows[key]["us"].append(float(kv["us"]))
                rows[key]["GBps"].append(float(kv["GBps"]))
                if kv["triad"] != "-":
                    rows[key]["triad"].append(float(kv["triad"]))
    return rows, order


def compare(ours_files, torch_files):
    ours, order = parse(ours_files)
    theirs, _ = parse(torch_files)
    med = statistics.median
    print("| op | case | shape | traffic | tapegrad µs | torch µs | ratio | tapegrad GB/s "
          "| triad frac | torch triad frac |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for key in order:
        o = ours[key]
        t = theirs.get(key)
        if t and t["shape"] != o["shape"]:
            sys.exit(f"shape mismatch for {key}: {o['shape']} vs {t['shape']}")
        tus = f"{med(t['us']):.0f}" if t else "?"
        ratio = f"{med(o['us']) / med(t['us']):.2f}" if t else "?"
        fr = f"{med(o['triad']):.2f}" if o["triad"] else "-"
        tfr = f"{med(t['triad']):.2f}" if t and t["triad"] else "-"
        print(f"| {key[0]} | {key[1]} | {o['shape']} | {o['traffic']} | {med(o['us']):.0f} "
              f"| {tus} | {ratio} | {med(o['GBps']):.1f} | {fr} | {tfr} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--only")
    ap.add_argument("--compare", nargs="+", metavar="OURS")
    ap.add_argument("--against", nargs="+", metavar="TORCH")
    args = ap.parse_args()
    if args.compare:
        if not args.against:
            sys.exit("--compare needs --against TORCH_FILES")
        compare(args.compare, args.against)
        return
    if not env_ok():
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    run(args)


if __name__ == "__main__":
    main()
