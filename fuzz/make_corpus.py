#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/{csv,idx,model,api}/: a handful of
small valid and invalid inputs per target, in each harness's input format
(see the comment at the top of fuzz/fuzz_*.c). Deterministic; every file is
well under 20 KB. Model files are written from docs/model-format.md by
write_model() below (the CLI's `tapegrad fit --save` writes the same bytes
for the same model).

Usage: fuzz/make_corpus.py [OUTDIR]   (default: the corpus folder beside it)"""
import gzip
import os
import random
import struct
import sys
import zlib

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 20000, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- csv
# byte 0: label column (byte % 6 - 1: 0 -> last, 1 -> column 0, ...), header
# mode (byte / 6 % 3: auto, yes, no), dtype (byte / 18 % 2: f32, f64)

LAST, FIRST = b"\x00", b"\x01"
YES, NO, F64 = b"\x06", b"\x0c", b"\x12"  # each with the label last
put("csv", "valid_header", LAST + b"a,b,label\n1,2,0\n3.5,-4e-2,1\n5,6,1\n")
put("csv", "valid_noheader", LAST + b"0.1,0.2,0.3,2\n1,1,1,0\n2,2,2,1\n")
put("csv", "valid_crlf_blanks", LAST + b"x,y\r\n\r\n1,2\r\n  3 ,\t4\r\n\n5,6")
put("csv", "valid_label_first", FIRST + b"1,0.5,0.25\n0,0.75,1e3\n")
put("csv", "valid_hexfloat", LAST + b"0x1p3,1\n-0X.8P1,0\n")
wide = ",".join(str(i) for i in range(600)).encode()
put("csv", "valid_wide", LAST + wide + b"\n" + wide + b"\n")
put("csv", "bad_ragged", LAST + b"1,2,3\n4,5\n")
put("csv", "bad_cell", LAST + b"1,2\n3,abc\n")
put("csv", "bad_nan_inf", LAST + b"1,nan\n2,inf\n")
put("csv", "bad_header_only", LAST + b"a,b,c\n")
put("csv", "bad_one_column", LAST + b"1\n2\n")
put("csv", "bad_label_range", b"\x05" + b"1,2,3\n4,5,6\n")
put("csv", "bad_empty", LAST)
put("csv", "bad_nul", LAST + b"1,2\n3,4\x005\n")
put("csv", "bad_overflow", LAST + b"1e999,1\n")
put("csv", "bad_long_line", LAST + b"1," + b"9" * 5000 + b"x\n")
# issue 12: line ends, BOM, the header decision, dtype limits, escapes
for name, data in [
        ("valid_bom", LAST + b"\xef\xbb\xbf0.5,1.5,0\n1,2,1\n3,4,0\n"),
        ("valid_cr", LAST + b"a,b,y\r1,2,0\r3,4,1\r\r\n5,6"),
        ("valid_guess", LAST + b"id,0.5,y\n1,2,0\n"),
        ("valid_header_yes", YES + b"0.5,nan,0\n1,2,1\n"),
        ("valid_f64_big", F64 + b"1e39,1\n2,3\n"),
        ("bad_header_no", NO + b"a,b\n1,2\n"),
        ("bad_nan_first", LAST + b"0.5,nan,0\n1,2,1\n"),
        ("bad_empty_first", LAST + b"0.5,,0\n1,2,1\n"),
        ("bad_f32_big", LAST + b"1,2\n1e39,1\n"),
        ("bad_title", LAST + b"My data\n1,2,0\n"),
        ("bad_control", LAST + b"1,2\n3,\x1b[2J\x07\xc2\x9b\n"),
        ("bad_utf16", LAST + b"\xff\xfe1\x00,\x002\x00")]:
    put("csv", name, data)

# ---------------------------------------------------------------- idx
# byte 0: flags; bytes 1..2: length of the images part; images; labels


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_input(images, labels, flags=0):
    return bytes([flags]) + struct.pack("<H", len(images)) + images + labels


rng = random.Random(5)
pix = bytes(rng.randrange(256) for _ in range(3 * 2 * 2))
img = idx(0x803, [3, 2, 2], pix)
lab = idx(0x801, [3], bytes([0, 1, 9]))
put("idx", "valid", idx_input(img, lab))
put("idx", "valid_gzip_both", idx_input(img, lab, 1 | 2))
put("idx", "valid_gzip_images", idx_input(img, lab, 1))
put("idx", "valid_28x28", idx_input(idx(0x803, [2, 28, 28], bytes(range(256)) * 6 + bytes(32)),
                                    idx(0x801, [2], b"\x07\x03")))
put("idx", "raw_named_gz", idx_input(img, lab, 4))
put("idx", "bad_magic", idx_input(idx(0x801, [3, 2, 2], pix), lab))
put("idx", "bad_label_magic", idx_input(img, idx(0x803, [3], b"\x00\x01\x02")))
put("idx", "bad_count", idx_input(img, idx(0x801, [2], b"\x00\x01")))
put("idx", "bad_truncated_pixels", idx_input(img[:-3], lab))
put("idx", "bad_truncated_header", idx_input(img[:9], lab))
put("idx", "bad_zero_items", idx_input(idx(0x803, [0, 2, 2], b""), idx(0x801, [0], b"")))
put("idx", "bad_huge_items", idx_input(idx(0x803, [100000001, 1, 1], pix), idx(0x801, [100000001], b"")))
put("idx", "bad_huge_claim", idx_input(idx(0x803, [100000000, 64, 64], pix), idx(0x801, [100000000], lab)))
put("idx", "bad_zero_pixels", idx_input(idx(0x803, [3, 0, 2], pix), lab))
put("idx", "bad_no_labels", idx_input(img, lab, 16))
put("idx", "bad_no_images", idx_input(img, lab, 32))
gz_img = gzip.compress(img, mtime=0)
put("idx", "bad_gzip_crc", idx_input(gz_img[:-8] + bytes([gz_img[-8] ^ 1]) + gz_img[-7:], lab, 4))
put("idx", "bad_gzip_trailer_cut", idx_input(gz_img[:-3], lab, 4))
put("idx", "bad_trailing", idx_input(img + b"\x00", lab))
put("idx", "bad_gzip_cut", bytes([4]) + struct.pack("<H", 20) + gzip.compress(img, mtime=0)[:20] + lab)

# ---------------------------------------------------------------- model
# byte 0: mode (% 3): 0 raw file, 1 file with its trailer fixed, 2 generator


def write_model(dtype, loss, act, sizes, n_classes=None, stats=None, seed=1, version=1):
    """A model file per docs/model-format.md: sizes = [n_in, hidden..., n_out]."""
    r = random.Random(seed)
    n_in, n_out = sizes[0], sizes[-1]
    if n_classes is None:
        n_classes = {0: 2, 1: n_out, 2: 0}[loss]
    b = b"TGMODEL\x00" + struct.pack("<IIIIIi", version, dtype, loss, act, len(sizes) - 1, n_classes)
    b += struct.pack("<QQ", n_in, n_out)
    for fi, fo in zip(sizes, sizes[1:]):
        b += struct.pack("<QQ", fi, fo)
    b += bytes([1 if stats else 0])
    if stats:
        b += b"".join(struct.pack("<d", r.gauss(0, 3)) for _ in range(n_in))
        b += b"".join(struct.pack("<d", 0.5 + r.random()) for _ in range(n_in))
    fmt = "<f" if dtype == 0 else "<d"
    for fi, fo in zip(sizes, sizes[1:]):
        b += b"".join(struct.pack(fmt, r.gauss(0, 1)) for _ in range(fi * fo + fo))
    b += struct.pack("<Q", len(b))
    return b + struct.pack("<I", zlib.crc32(b) & 0xFFFFFFFF)


RAW, FIX, GEN = b"\x00", b"\x01", b"\x02"
ce = write_model(0, 1, 1, [4, 8, 3], stats=True)
bce = write_model(1, 0, 2, [3, 5, 1])
mse = write_model(0, 2, 0, [2, 1], seed=3)
deep = write_model(0, 1, 4, [2, 3, 3, 3, 2], seed=4)
put("model", "valid_ce_f32_std", RAW + ce)
put("model", "valid_bce_f64", RAW + bce)
put("model", "valid_mse_linear", RAW + mse)
put("model", "valid_deep_leaky", RAW + deep)
put("model", "fix_ce", FIX + ce)
put("model", "fix_deep", FIX + deep)
put("model", "fix_bad_chain", FIX + ce[:48] + struct.pack("<QQ", 5, 8) + ce[64:])
put("model", "fix_bad_classes", FIX + write_model(0, 1, 1, [4, 3], n_classes=7))
std_model = write_model(1, 2, 3, [2, 2], stats=True)  # std at bytes 81..97
put("model", "fix_bad_std", FIX + std_model[:81] + struct.pack("<dd", 0.0, -1.0) + std_model[97:])
put("model", "bad_crc", RAW + ce[:-1] + bytes([ce[-1] ^ 1]))
put("model", "bad_truncated", RAW + ce[:-7])
put("model", "bad_trailing", RAW + ce + b"\x00")
put("model", "bad_version", RAW + write_model(0, 1, 1, [4, 3], version=2))
put("model", "bad_magic", RAW + b"TGMODEX\x00" + ce[8:])
put("model", "bad_empty", RAW)
put("model", "bad_short", RAW + ce[:30])
for i in range(6):
    r = random.Random(100 + i)
    put("model", "gen_%d" % i, GEN + bytes(r.randrange(256) for _ in range(40 + 60 * i)))

# ---------------------------------------------------------------- api
# 8 bytes of seed, then actions (see fuzz_api.c); random bytes explore well.
for i in range(10):
    r = random.Random(200 + i)
    put("api", "random_%d" % i, bytes(r.randrange(256) for _ in range(24 + 40 * i)))
# every op once from its samples (action 0, op i, sizes 3,4,2, float64)
put("api", "every_op_sampled", b"\x01" * 8 + b"".join(bytes([0, i, 2, 3, 1, 1]) for i in range(24)))
# a chain: sample tanh, then chain on it, then backward and replay
put("api", "chain", b"\x02" * 8 + bytes([0, 3, 3, 2, 1, 1, 5, 0, 0, 5, 0, 11, 7, 0, 8, 0]))

# ---------------------------------------------------------------- safetensors
# byte 0: bit 0 dtype F64, bit 1 the CNN model (else dense 2 on 3), bit 2
# framed (bytes 1-2 the header length, the prefix written by the harness).
import json  # noqa: E402


def safetensors(tensors, pad=True):
    """(name, dtype, shape, values) -> the file, as torch's save_file."""
    header, data = {}, b""
    for name, dtype, shape, values in tensors:
        raw = struct.pack("<%d%s" % (len(values), "f" if dtype == "F32" else "d"), *values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return text, data


def st_tensors(shapes, dtype):
    return [(n, dtype, s, [k / 10 for k in range(prod(s))]) for n, s in shapes]


def prod(s):
    p = 1
    for d in s:
        p *= d
    return p


DENSE = [("0.weight", [2, 3]), ("0.bias", [2])]
CNN = [("0.weight", [2, 1, 3, 3]), ("0.bias", [2]), ("1.weight", [2]), ("1.bias", [2]),
       ("1.running_mean", [2]), ("1.running_var", [2]), ("3.weight", [3, 8]), ("3.bias", [3])]
for model_bit, shapes in ((0, DENSE), (2, CNN)):
    for dt_bit, dtype in ((0, "F32"), (1, "F64")):
        text, data = safetensors(st_tensors(shapes, dtype))
        whole = struct.pack("<Q", len(text)) + text + data
        tag = "%s_%s" % ("cnn" if model_bit else "dense", dtype.lower())
        put("safetensors", "valid_" + tag, bytes([model_bit | dt_bit]) + whole)
        framed = bytes([4 | model_bit | dt_bit]) + struct.pack("<H", len(text)) + text + data
        put("safetensors", "framed_" + tag, framed)
text, data = safetensors(st_tensors(DENSE, "F32"))
put("safetensors", "bad_truncated", b"\x00" + struct.pack("<Q", len(text)) + text + data[:-3])
put("safetensors", "bad_hlen", b"\x00" + struct.pack("<Q", 1 << 40) + text + data)
put("safetensors", "bad_shape", b"\x04" + struct.pack("<H", len(text)) +
    text.replace(b"[2, 3]", b"[3, 2]") + data)
extra = text.replace(b"{\"0.weight", b"{\"x\": {}, \"0.weight")
put("safetensors", "bad_extra", b"\x04" + struct.pack("<H", len(extra)) + extra + data)
