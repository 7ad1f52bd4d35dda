"""Helpers shared by the PyTorch benchmark scripts (torch_vae.py,
torch_conv.py, torch_cnn.py): Fashion-MNIST's IDX files and the thread
count. Plain Python: importing this module does not import torch."""

import gzip
import json
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


def save_safetensors(path, state):
    """state: name -> float tensor; written as F32 (num_batches_tracked,
    an integer counter tapegrad does not keep, is left out)."""
    header, blobs, off = {}, [], 0
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        vals = t.detach().float().contiguous().reshape(-1).tolist()
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt", "producer": "benches/torch_cnn.py"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(torch, path):
    """A safetensors file (F32 or F64 tensors) as a state_dict of float32
    tensors, read with json and struct."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    data = blob[8 + hlen:]
    state = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        fmt = {"F32": "f", "F64": "d"}[e["dtype"]]
        vals = struct.unpack("<%d%s" % ((end - b) // struct.calcsize(fmt), fmt), data[b:end])
        state[name] = torch.tensor(vals, dtype=torch.float32).reshape(e["shape"])
    return state
