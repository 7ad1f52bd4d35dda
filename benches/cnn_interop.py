#!/usr/bin/python3
"""Issue 16's safetensors interchange on the whole Fashion-MNIST test set
(10,000 images): a CNN trained in one engine, loaded in the other, gives
the same logits. Needs torch (Debian's python3-torch) and a release build.

    /usr/bin/python3 benches/cnn_interop.py [--build build-rel] [--epochs 1]
                                            [--limit 0] [--bn] [--threads 2]

1. PyTorch → tapegrad: benches/torch_cnn.py trains (--epochs, --limit
   training images, seed 1), writes torch.safetensors (json + struct) and
   its test logits; bench_cnn --epochs 0 --load torch.safetensors writes
   tapegrad's float32 test logits of the same weights.
2. tapegrad → PyTorch: bench_cnn trains (seed 1), writes tg.safetensors and
   its test logits; torch_cnn.py --epochs 0 --load tg.safetensors writes
   torch's.
Prints, for each direction, max |Δlogit| over the 100,000 logits, the
number of images whose predicted class differs, and both accuracies. The
target is max |Δlogit| <= 1e-5 (float32 on both sides)."""

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cnn_interop: {' '.join(cmd)} failed:\n{r.stderr}")
    return float(re.search(r"test: accuracy=([0-9.]+)", r.stdout).group(1))


def logits(path):
    with open(path, "rb") as f:
        raw = f.read()
    v = struct.unpack("<%df" % (len(raw) // 4), raw)
    return [v[i:i + 10] for i in range(0, len(v), 10)]


def compare(name, a_path, b_path, acc_a, acc_b):
    a, b = logits(a_path), logits(b_path)
    assert len(a) == len(b) == 10000, (len(a), len(b))
    d = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    diff = sum(ra.index(max(ra)) != rb.index(max(rb)) for ra, rb in zip(a, b))
    ok = d <= 1e-5
    print(f"{name}: max |dlogit| = {d:.3g} over {len(a)} images x 10, "
          f"{diff} predictions differ, accuracy {acc_a:.4f} vs {acc_b:.4f}: "
          f"{'ok' if ok else 'FAIL'} (<= 1e-5)", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bn", action="store_true")
    a = ap.parse_args()
    exe = os.path.join(a.build, "benches", "bench_cnn")
    torch_cnn = [sys.executable, os.path.join(HERE, "torch_cnn.py")]
    common = ["--threads", str(a.threads), "--seed", "1"] + (["--bn"] if a.bn else [])
    train = ["--epochs", str(a.epochs), "--limit", str(a.limit)]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda name: os.path.join(tmp, name)  # noqa: E731
        acc_t = run(torch_cnn + common + train + ["--save", p("torch.safetensors"),
                                                  "--logits", p("torch.f32")])
        acc_g = run([exe] + common + ["--epochs", "0", "--load", p("torch.safetensors"),
                                      "--logits", p("tg_of_torch.f32")])
        ok &= compare("pytorch -> tapegrad", p("torch.f32"), p("tg_of_torch.f32"), acc_t, acc_g)
        acc_g = run([exe] + common + train + ["--save", p("tg.safetensors"),
                                              "--logits", p("tg.f32")])
        acc_t = run(torch_cnn + common + ["--epochs", "0", "--load", p("tg.safetensors"),
                                          "--logits", p("torch_of_tg.f32")])
        ok &= compare("tapegrad -> pytorch", p("tg.f32"), p("torch_of_tg.f32"), acc_g, acc_t)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
