#!/usr/bin/python3
"""PyTorch side of bench_attention: the same block, step and line format.

    /usr/bin/python3 benches/torch_attention.py [--threads N] [--seconds S]
                                                [--layer block|mha] [--batch N]

One iteration = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0,
activation="gelu", batch_first=True, norm_first=True) in training mode on
x (batch x 64 x 128, requires grad) with src_mask = the causal bool mask,
then y.backward(ones), the gradients set to None between iterations
(layer=mha: nn.MultiheadAttention(128, 4, batch_first=True)(x, x, x,
attn_mask=causal, need_weights=False)). Debian's torch 1.13 runs on its
OpenMP threads: the script runs itself again in a child with
OMP_NUM_THREADS=N (and torch.set_num_threads(N)).

Output, one line per layer:
  torch layer=block dtype=f32 threads=1 batch=32 us=<median> tokens_per_s=<N*T/time>
"""

import argparse

from torch_conv import median_us, on_threads  # the convolution lines' timing and threads

T, D, HEADS = 64, 128, 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--layer", default=None, help="run this line only (block or mha)")
    a = ap.parse_args()
    torch = on_threads(a.threads)
    nn = torch.nn
    torch.manual_seed(17)
    x = torch.randn(a.batch, T, D).requires_grad_()
    seed = torch.ones(a.batch, T, D)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    block = nn.TransformerEncoderLayer(D, HEADS, 4 * D, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True).train()
    mha = nn.MultiheadAttention(D, HEADS, batch_first=True).train()
    layers = [("block", block, lambda: block(x, src_mask=causal)),
              ("mha", mha, lambda: mha(x, x, x, attn_mask=causal, need_weights=False)[0])]
    for name, module, fwd in layers:
        if a.layer not in (None, name):
            continue

        def step():
            x.grad = None
            for p in module.parameters():
                p.grad = None
            fwd().backward(seed)

        us = median_us(step, a.seconds)
        print(f"torch layer={name} dtype=f32 threads={a.threads} batch={a.batch} us={us:.1f} "
              f"tokens_per_s={a.batch * T / (us * 1e-6):.0f}", flush=True)


if __name__ == "__main__":
    main()
