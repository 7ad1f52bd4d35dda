"""examples/char_lm.c in PyTorch (issue 17): the same corpus, models and
recipe, for bits per character and tokens per second side by side.

  corpus  every file of /usr/share/games/fortunes that is neither a .dat
          file nor a symbolic link, in sorted name order; bytes as tokens;
          the first 90 % trains, the last 10 % validates
  lstm    nn.Embedding(256, 64) → nn.LSTM(64, 256, batch_first=True) →
          nn.Linear(256, 256)
  gpt     nn.Embedding(256, 128) + learned positions nn.Embedding(64, 128)
          → 2 pre-LN blocks (x + MHA(LN(x)) causal, 4 heads; x + MLP(LN(x)),
          MLP 128 → 512 GELU → 128) → LayerNorm → nn.Linear(128, 256)
  recipe  Adam lr 1e-3, 32 windows of 64 bytes drawn uniformly, 2000 steps;
          validation: 64 batches of 32 windows at evenly spaced offsets of
          the validation split (char_lm.c's), bits per char = mean CE / ln 2

Run with Debian's python3 (torch 1.13):
  /usr/bin/python3 benches/torch_charlm.py --model lstm --threads 2 [--steps N] [--seed S]
Prints `valid: bpc=... tokens/s=...` as char_lm does.
"""
import argparse
import math
import os
import stat
import time

import torch
import torch.nn as nn

BATCH, SEQ, VOCAB, VAL_BATCHES = 32, 64, 256, 64


def load_corpus(d):
    names = sorted(n for n in os.listdir(d) if not n.startswith(".") and not n.endswith(".dat"))
    out = bytearray()
    for n in names:
        p = os.path.join(d, n)
        if stat.S_ISREG(os.lstat(p).st_mode):  # not a symlink, not a folder
            with open(p, "rb") as f:
                out += f.read()
    return torch.tensor(list(out), dtype=torch.long)


class LSTMLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 64)
        self.rnn = nn.LSTM(64, 256, batch_first=True)
        self.head = nn.Linear(256, VOCAB)

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0])


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, d=128):
        super().__init__()
        self.emb, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList([Block(d, 4), Block(d, 4)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB)
        self.register_buffer("mask", torch.triu(torch.full((SEQ, SEQ), float("-inf")), 1))

    def forward(self, x):
        T = x.shape[1]
        h = self.emb(x) + self.pos(torch.arange(T))
        for b in self.blocks:
            h = b(h, self.mask[:T, :T])
        return self.head(self.ln(h))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["lstm", "gpt"], default="lstm")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", default="/usr/share/games/fortunes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = load_corpus(a.corpus)
    n_train = len(text) * 9 // 10
    train, val = text[:n_train], text[n_train:]
    model = LSTMLM() if a.model == "lstm" else GPT()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"corpus: {len(text)} bytes ({n_train} train, {len(val)} valid); model {a.model}, "
          f"{nparams} parameters; {a.threads} thread(s)")
    ar = torch.arange(SEQ + 1)
    t_train, cpu_train, run = 0.0, 0.0, 0.0
    for step in range(1, a.steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        starts = torch.randint(0, n_train - SEQ, (BATCH,))
        w = train[starts[:, None] + ar]
        logits = model(w[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t_train += time.perf_counter() - t0
        cpu_train += time.process_time() - c0
        run += loss.item()
        if step % 100 == 0 or step == a.steps:
            k = step % 100 or 100
            print(f"step {step}: loss={run / k:.4f} ({run / k / math.log(2):.3f} bpc) "
                  f"{t_train:.1f} s", flush=True)
            run = 0.0
    windows, span = VAL_BATCHES * BATCH, len(val) - SEQ - 1
    starts = torch.tensor([int(k * span / (windows - 1)) for k in range(windows)])
    total = 0.0
    model.eval()
    with torch.no_grad():
        for b in range(VAL_BATCHES):
            w = val[starts[b * BATCH:(b + 1) * BATCH, None] + ar]
            logits = model(w[:, :-1])
            total += nn.functional.cross_entropy(logits.reshape(-1, VOCAB),
                                                 w[:, 1:].reshape(-1)).item()
    bpc = total / VAL_BATCHES / math.log(2)
    tps = a.steps * BATCH * SEQ / t_train if a.steps else 0
    print(f"valid: bpc={bpc:.4f} tokens/s={tps:.0f} model={a.model} steps={a.steps} "
          f"threads={a.threads} train_s={t_train:.1f} cpu_s={cpu_train:.1f}")


if __name__ == "__main__":
    main()
