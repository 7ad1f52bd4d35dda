"""safetensors interchange with PyTorch's side (issue 16), in plain Python:
json and struct only, so it runs where torch is absent (CI).

Usage: safetensors_check.py TEST_SAFETENSORS_EXE

1. Writes py.safetensors as torch's safetensors.torch.save_file would for
   the model of tests/test_safetensors.c (nn.Sequential(Conv2d(1, 2, 3),
   BatchNorm2d(2), ReLU(), Flatten(), Linear(8, 3)), state_dict names
   without num_batches_tracked): value k of every tensor is k/10, ".bias"
   tensors F64 and the others F32, keys in the header in reverse order.
   The C test loads it into a float64 model and checks every value.
2. The C test writes c.safetensors (value k of tensor j is j + k/1000,
   float64); this script reads it back and checks the layout (header length
   a multiple of 8, offsets contiguous from 0 to the end of the file), the
   names, order, dtypes, shapes and values.
   Where torch is installed, the C side's eval logits on a fixed input
   match torch's nn.Sequential with that state_dict (load_state_dict
   strict; BatchNorm fills in num_batches_tracked) to 1e-12.
3. A file the C side must refuse (a wrong shape): the C run must fail.
Exit status 0 only if every check passed; each failure is printed."""

import json
import os
import struct
import subprocess
import sys
import tempfile

TENSORS = [  # PyTorch's state_dict order and shapes
    ("0.weight", [2, 1, 3, 3]),
    ("0.bias", [2]),
    ("1.weight", [2]),
    ("1.bias", [2]),
    ("1.running_mean", [2]),
    ("1.running_var", [2]),
    ("4.weight", [3, 8]),
    ("4.bias", [3]),
]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype "F32"/"F64", shape, values)."""
    header, data = {}, b""
    for name, dtype, shape, values in tensors:
        fmt = "<%d%s" % (len(values), "f" if dtype == "F32" else "d")
        raw = struct.pack(fmt, *values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    check(hlen % 8 == 0, "header length %d not a multiple of 8" % hlen)
    # object_pairs_hook keeps the file's order (and would show duplicates).
    pairs = json.loads(blob[8:8 + hlen], object_pairs_hook=list)
    return pairs, blob[8 + hlen:]


def known(name):
    """The dtype Python writes tensor `name` in (the C side knows it too)."""
    return "F64" if name.endswith(".bias") else "F32"


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        py_file, c_file = os.path.join(d, "py.safetensors"), os.path.join(d, "c.safetensors")
        write_safetensors(py_file, [(n, known(n), s, [k / 10 for k in range(numel(s))])
                                    for n, s in reversed(TENSORS)])
        r = subprocess.run([exe, "--import", py_file, "--export", c_file],
                           capture_output=True, text=True)
        print(r.stdout + r.stderr, end="")
        check(r.returncode == 0, "C side failed on the Python file (status %d)" % r.returncode)
        if os.path.exists(c_file):
            state = check_c_file(c_file)
            compare_with_torch(state, r.stdout)
        else:
            check(False, "C side wrote no file")

        bad = [(n, "F32", [3, 3, 1, 2] if n == "0.weight" else s, [0.0] * numel(s))
               for n, s in TENSORS]
        write_safetensors(py_file, bad)
        r = subprocess.run([exe, "--import", py_file, "--export", c_file],
                           capture_output=True, text=True)
        check(r.returncode != 0 and "has shape [3, 3, 1, 2]" in r.stderr,
              "a wrong shape was not refused: %r" % r.stderr)
    print("%d failed" % len(failures) if failures else "safetensors_check: all passed")
    return 1 if failures else 0


def check_c_file(path):
    pairs, data = read_safetensors(path)
    meta = [dict(v) for k, v in pairs if k == "__metadata__"]
    check(meta == [{"format": "pt", "producer": "tapegrad"}], "metadata %r" % meta)
    entries = [(k, dict(v)) for k, v in pairs if k != "__metadata__"]
    check([k for k, _ in entries] == [n for n, _ in TENSORS],
          "names/order %r" % [k for k, _ in entries])
    end, state = 0, {}
    for j, ((name, e), (_, shape)) in enumerate(zip(entries, TENSORS)):
        check(e["dtype"] == "F64", "%s dtype %s" % (name, e["dtype"]))
        check(e["shape"] == shape, "%s shape %r, want %r" % (name, e["shape"], shape))
        b, en = e["data_offsets"]
        check(b == end and en - b == 8 * numel(shape), "%s offsets %r" % (name, [b, en]))
        end = en
        values = struct.unpack("<%dd" % numel(shape), data[b:en]) if en <= len(data) else ()
        want = [j + k / 1000 for k in range(numel(shape))]
        check(list(values) == want, "%s values %r, want %r" % (name, values[:4], want[:4]))
        state[name] = (shape, list(values))
    check(end == len(data), "data of %d bytes, tensors end at %d" % (len(data), end))
    return state


def compare_with_torch(state, stdout):
    """The C model's eval logits vs torch's with the C file's tensors, where
    torch is installed (1e-12 relative: float64 on both sides, the same
    formulas; only summation order differs)."""
    try:
        import torch
    except ImportError:
        print("torch absent: logits not compared with torch")
        return
    line = [ln for ln in stdout.splitlines() if ln.startswith("logits:")]
    check(len(line) == 1, "no logits line from the C side")
    if not line:
        return
    got = [float(v) for v in line[0].split()[1:]]
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 3)).double()
    sd = {n: torch.tensor(v, dtype=torch.float64).reshape(s) for n, (s, v) in state.items()}
    # strict: every name must match (BatchNorm fills in num_batches_tracked).
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        check(False, "torch refused the C side's state_dict: %s" % e)
        return
    model.eval()
    import math
    x = torch.tensor([math.sin(k) for k in range(32)], dtype=torch.float64).reshape(2, 1, 4, 4)
    want = model(x).flatten().tolist()
    check(len(got) == len(want) and
          all(abs(a - b) <= 1e-12 * max(1.0, abs(b)) for a, b in zip(got, want)),
          "logits %r, torch %r" % (got, want))
    print("logits match torch %s to 1e-12" % torch.__version__)


if __name__ == "__main__":
    sys.exit(main())
