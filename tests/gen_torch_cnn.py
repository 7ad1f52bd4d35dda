#!/usr/bin/python3
"""Writes tests/data/torch_cnn/, the fixture of tests/test_torch_cnn.c
(issue 16: a CNN trained in PyTorch, imported into tapegrad, gives
PyTorch's logits). Needs torch (Debian's python3-torch 1.13):

    /usr/bin/python3 tests/gen_torch_cnn.py [OUT_DIR]

The model is benches/torch_cnn.py's with --bn (conv 1->32 3x3, BatchNorm2d,
relu, maxpool 2, conv 32->64 3x3, BatchNorm2d, relu, maxpool 2, flatten,
dense 128 relu, dropout 0.5, dense 10; nn.Sequential names), trained
briefly (one epoch over the first 6,000 Fashion-MNIST training images, Adam
1e-3, batch 128, seed 16) so that no tensor is at its initial value and the
batch norms' running statistics are not 0 and 1. Files:
  model.safetensors              the state_dict, F32, written with json and
                                 struct only (torch_common.save_safetensors)
  t256-images-idx3-ubyte.gz,     the first 256 t10k test images and labels,
  t256-labels-idx1-ubyte.gz      IDX as Fashion-MNIST ships it (gzip, mtime 0)
  logits_f32.bin                 model.eval() logits on those images (pixels
                                 / 255), float32 little-endian, 256 x 10
  logits_f64.bin                 the same model converted to float64
                                 (model.double(): every weight exactly), the
                                 inputs in float64: float64 logits, 256 x 10
The generator is deterministic on one machine and torch build (one thread);
the committed fixture is what the C test checks against."""

import gzip
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benches"))

from torch_cnn import make_model  # noqa: E402
from torch_common import DATA, read_idx, run_with_threads, save_safetensors  # noqa: E402

N_TEST = 256


def idx_gz(path, magic_dims, shape, payload):
    head = struct.pack(">BBBB", 0, 0, 8, magic_dims) + struct.pack(">" + "I" * len(shape), *shape)
    with open(path, "wb") as f:
        f.write(gzip.compress(head + payload, mtime=0))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "data", "torch_cnn")
    run_with_threads(1)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(16)
    os.makedirs(out, exist_ok=True)
    raw, (n, h, w) = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"))
    xtr = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(n, 1, h, w)[:6000]
    xtr = xtr.to(torch.float32) / 255.0
    raw, _ = read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz"))
    ytr = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64)[:6000]
    model = make_model(torch, True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(xtr))
    for s in range(0, len(xtr), 128):
        idx = perm[s:s + 128]
        opt.zero_grad()
        F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    model.eval()
    save_safetensors(os.path.join(out, "model.safetensors"), model.state_dict())

    raw, (n, h, w) = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))
    pixels = raw[:N_TEST * h * w]
    idx_gz(os.path.join(out, "t256-images-idx3-ubyte.gz"), 3, (N_TEST, h, w), pixels)
    raw, _ = read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"))
    idx_gz(os.path.join(out, "t256-labels-idx1-ubyte.gz"), 1, (N_TEST,), raw[:N_TEST])

    x = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(N_TEST, 1, h, w)
    with torch.no_grad():
        l32 = model(x.to(torch.float32) / 255.0)
        l64 = model.double()(x.to(torch.float64) / 255.0)
    with open(os.path.join(out, "logits_f32.bin"), "wb") as f:
        f.write(struct.pack("<%df" % l32.numel(), *l32.reshape(-1).tolist()))
    with open(os.path.join(out, "logits_f64.bin"), "wb") as f:
        f.write(struct.pack("<%dd" % l64.numel(), *l64.reshape(-1).tolist()))
    acc = (l32.argmax(1) == torch.tensor(list(raw[:N_TEST]))).float().mean().item()
    print(f"gen_torch_cnn: {out}: {N_TEST} test images, accuracy {acc:.4f}, "
          f"max |f32 - f64 logit| {(l32.double() - l64).abs().max().item():.3g}")


if __name__ == "__main__":
    main()
