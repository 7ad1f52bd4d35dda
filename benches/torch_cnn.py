#!/usr/bin/python3
"""PyTorch side of benches/bench_cnn.c: issue 16's CNN on Fashion-MNIST.

    /usr/bin/python3 benches/torch_cnn.py [--epochs 10] [--seed 1] [--threads 2]
                                          [--bn] [--limit N] [--save FILE.safetensors]

Model (nn.Sequential, so state_dict names are the layer indices, as
tapegrad's tg_model):
  Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2),
  Flatten, Linear(1600, 128), ReLU, Linear(128, 10)
--bn: BatchNorm2d after each convolution (before its ReLU) and Dropout(0.5)
before the last Linear.
Recipe: cross_entropy on the logits, Adam (lr 1e-3, torch's defaults),
batch 128 with the last, shorter batch kept (DataLoader's drop_last=False),
shuffled each epoch by torch.randperm; torch's default initialisation.
Data: Debian's dataset-fashion-mnist, pixels / 255 in [0, 1]; the 10,000
t10k images are the test set.

Threads: runs itself again in a child with OMP_NUM_THREADS=N (Debian's torch
uses OpenMP; oneDNN runs the convolutions on those threads) and
torch.set_num_threads(N).

Output, one line per epoch (time = the training loop only: no loading, no
evaluation; cpu = the process's CPU time in it, all threads), then the
final test accuracy:
  epoch 1/10 loss=0.4705 time=21.03s cpu=40.11s test_acc=0.8712
  test: accuracy=0.9070
--save writes the trained state_dict as safetensors (json + struct only),
--load starts from one (strict: every name and shape must match), --logits
writes the test logits after training (float32 little-endian, 10000 x 10):
benches/cnn_interop.py compares them with tapegrad's."""

import argparse
import struct
import time

from torch_common import (load_images, load_labels, read_safetensors, run_with_threads,
                          save_safetensors)


def load(torch, name):
    return load_images(torch, name, (1, 28, 28)), load_labels(torch, name)


def make_model(torch, bn):
    nn = torch.nn
    layers = [nn.Conv2d(1, 32, 3)] + ([nn.BatchNorm2d(32)] if bn else []) + \
             [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3)] + \
             ([nn.BatchNorm2d(64)] if bn else []) + \
             [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU()] + \
             ([nn.Dropout(0.5)] if bn else []) + [nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def accuracy(torch, model, x, y):
    model.eval()
    right = 0
    with torch.no_grad():
        for s in range(0, len(x), 1000):
            right += (model(x[s:s + 1000]).argmax(1) == y[s:s + 1000]).sum().item()
    model.train()
    return right / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bn", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    ap.add_argument("--save", default=None, help="write the trained state_dict (safetensors)")
    ap.add_argument("--load", default=None, help="start from this state_dict (safetensors)")
    ap.add_argument("--logits", default=None,
                    help="write the test logits after training (float32 LE, 10000 x 10)")
    a = ap.parse_args()
    run_with_threads(a.threads)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(torch, "train")
    xte, yte = load(torch, "t10k")
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    model = make_model(torch, a.bn)
    if a.load:
        model.load_state_dict(read_safetensors(torch, a.load), strict=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(xtr)
    for ep in range(1, a.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n)
        total = 0.0
        for s in range(0, n, 128):
            idx = perm[s:s + 128]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        acc = accuracy(torch, model, xte, yte)
        print(f"epoch {ep}/{a.epochs} loss={total / n:.4f} time={dt:.2f}s cpu={dc:.2f}s "
              f"test_acc={acc:.4f}", flush=True)
    print(f"test: accuracy={accuracy(torch, model, xte, yte):.4f}", flush=True)
    if a.logits:
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(xte[s:s + 1000]) for s in range(0, len(xte), 1000)])
        with open(a.logits, "wb") as f:
            f.write(struct.pack("<%df" % out.numel(), *out.reshape(-1).tolist()))
    if a.save:
        save_safetensors(a.save, model.state_dict())


if __name__ == "__main__":
    main()
