"""Helpers shared by the PyTorch benchmark scripts (torch_vae.py,
torch_conv.py, torch_cnn.py): Fashion-MNIST's IDX files and the thread
count. Plain Python: importing this module does not import torch."""

import gzip
import os
import struct
import subprocess
import sys

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """The raw bytes after an IDX header (gzip-compressed file) and the shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return data[4 + 4 * dims :], shape


def load_images(torch, name, shape=(784,)):
    """DATA/NAME-images as float32 in [0, 1], each image reshaped to shape."""
    raw, dims = read_idx(os.path.join(DATA, f"{name}-images-idx3-ubyte.gz"))
    x = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(dims[0], *shape)
    return x.to(torch.float32) / 255.0


def load_labels(torch, name):
    raw, _ = read_idx(os.path.join(DATA, f"{name}-labels-idx1-ubyte.gz"))
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64)


def run_with_threads(n):
    """Debian's torch runs on OpenMP threads, fixed when it loads: unless
    OMP_NUM_THREADS is already n, run this script again in a child with
    OMP_NUM_THREADS=N (OPENBLAS_ and MKL_ too, for any BLAS call) and exit
    with its status. Call before importing torch."""
    want = str(n)
    if os.environ.get("OMP_NUM_THREADS") != want:
        env = dict(os.environ, OMP_NUM_THREADS=want, OPENBLAS_NUM_THREADS=want,
                   MKL_NUM_THREADS=want)
        sys.exit(subprocess.call([sys.executable] + sys.argv, env=env))
