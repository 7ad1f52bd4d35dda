#!/usr/bin/env python3
"""Issue 19's cost model of one data-parallel step (docs/distributed.md):

    T(p) = compute + 2(p-1)/p * bytes / bandwidth + 2(p-1) * latency

compute from the MLP's measured single-rank step time (1 rank x 1 thread,
benches/dist_fashion.sh); for the CNN and the transformer, from their FLOP
counts (below) at the MLP's measured GFLOP/s. Prints the markdown tables.
Usage: python3 benches/dist_model.py MLP_STEP_MS [ALPHA_US BETA_GBPS N_MEASURED:US ...]
  the optional part checks the allreduce term against bench_allreduce's
  measurements on this machine: alpha and beta fitted there, then each
  measured size's prediction beside the measurement."""
import sys

B = 128  # the demo's batch (examples per rank: weak scaling)


def dense(i, o):
    return i * o  # multiply-adds per example


def train_flops(macs, first_layer_macs):
    """Forward 2·MACs, weight gradients 2·MACs, input gradients 2·MACs except
    the first layer's (its input needs none); elementwise ops ignored."""
    return 6 * macs - 2 * first_layer_macs


# 784-256-128-10 MLP
mlp_l1 = dense(784, 256)
mlp_macs = mlp_l1 + dense(256, 128) + dense(128, 10)
mlp_params = mlp_macs + 256 + 128 + 10
# issue 16's CNN on 1x28x28: conv 1->32 3x3 (26x26), pool (13), conv 32->64 3x3
# (11x11), pool (5), dense 1600->128, dense 10
cnn_c1 = 32 * 26 * 26 * 9
cnn_macs = cnn_c1 + 64 * 11 * 11 * 32 * 9 + dense(1600, 128) + dense(128, 10)
cnn_params = (32 * 9 + 32) + (64 * 288 + 64) + (1600 * 128 + 128) + (128 * 10 + 10)
# issue 17's char transformer: d=128, 2 blocks (attention 4·d², MLP d->4d->d),
# vocab 256, T=64, untied head; a step = 32 sequences of 64 tokens
d, T, V, blocks, seqs = 128, 64, 256, 2, 32
tr_tok_macs = blocks * (4 * d * d + 2 * d * 4 * d + 2 * T * d) + d * V
tr_params = (V * d + T * d + blocks * (4 * d * d + 4 * d + 8 * d * d + 5 * d + 4 * d)
             + 2 * d + d * V + V)

models = [
    ("MLP 784-256-128-10", mlp_params, train_flops(mlp_macs, mlp_l1) * B, f"batch {B}"),
    ("CNN (issue 16)", cnn_params, train_flops(cnn_macs, cnn_c1) * B, f"batch {B}"),
    ("char transformer (issue 17)", tr_params, 6 * tr_tok_macs * seqs * T,
     f"{seqs} sequences x {T} tokens"),
]

LINKS = [("10 Gb/s", 1.25e9, 20e-6), ("100 Gb/s", 12.5e9, 2e-6)]  # bandwidth B/s, latency s
RANKS = [2, 4, 8, 16, 32, 64, 128, 256]


def allreduce(p, nbytes, bw, lat):
    return 2 * (p - 1) / p * nbytes / bw + 2 * (p - 1) * lat


def main():
    mlp_ms = float(sys.argv[1])
    gflops = models[0][2] / (mlp_ms * 1e-3) / 1e9
    print(f"MLP: {models[0][2] / 1e6:.1f} MFLOP per step in {mlp_ms:.2f} ms: {gflops:.1f} GFLOP/s "
          "(1 rank x 1 thread)\n")
    print("| model | parameters | gradient bytes (float32) | FLOP per step | compute per step |")
    print("|---|---|---|---|---|")
    for name, params, flops, batch in models:
        ms = flops / (gflops * 1e9) * 1e3
        how = "measured" if name.startswith("MLP") else f"at {gflops:.1f} GFLOP/s"
        print(f"| {name} | {params:,} | {4 * params / 1e6:.2f} MB | {flops / 1e9:.3f} G ({batch}) "
              f"| {ms:.2f} ms ({how}) |")
    for name, params, flops, batch in models:
        comp = flops / (gflops * 1e9)
        print(f"\n{name}: compute {comp * 1e3:.2f} ms per step of {batch} on one rank. "
              "Time per step in ms (efficiency). weak: each rank takes that batch (global "
              "batch p times larger), efficiency = compute / step; strong: that batch is the "
              "global batch, split p ways (compute / p, assuming it scales down linearly), "
              "efficiency = compute / (p x step)\n")
        print("| scaling, link | " + " | ".join(f"p={p}" for p in RANKS) + " |")
        print("|---|" + "---|" * len(RANKS))
        for mode in ("weak", "strong"):
            for lname, bw, lat in LINKS:
                cells = []
                for p in RANKS:
                    c = comp if mode == "weak" else comp / p
                    t = c + allreduce(p, 4 * params, bw, lat)
                    cells.append(f"{t * 1e3:.2f} ({100 * c / t:.0f}%)")
                print(f"| {mode}, {lname} | " + " | ".join(cells) + " |")
    if len(sys.argv) > 4:
        alpha, beta = float(sys.argv[2]) * 1e-6, float(sys.argv[3]) * 1e9
        print(f"\nthis machine, p=2, alpha {alpha * 1e6:.2f} us, bandwidth {beta / 1e9:.2f} GB/s:\n")
        print("| floats | measured | ring model | model / measured |")
        print("|---|---|---|---|")
        for item in sys.argv[4:]:
            n, us = item.split(":")
            pred = allreduce(2, 4 * int(n), beta, alpha) * 1e6
            print(f"| {int(n):,} | {float(us):.1f} us | {pred:.1f} us | {pred / float(us):.2f} |")


if __name__ == "__main__":
    main()
