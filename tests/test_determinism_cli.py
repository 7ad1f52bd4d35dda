#!/usr/bin/env python3
"""Determinism of `tapegrad fit` end to end (issue 5): the same data, seed
and --threads give byte-identical model files, on 1 thread and on 2
(data split, shuffling, initialisation and the float32 training loop all
from the seed; --threads N is tapegrad's pool, which cuts each product the
same way for a given N). The layer sizes are large enough for the pool to
cut the products. Prints "N passed, N failed" like the C tests.
Usage: test_determinism_cli.py PATH/TO/tapegrad"""
import os
import random
import subprocess
import sys
import tempfile

from cli_check import check, summary

TG = sys.argv[1]


def fit(data, out, threads, seed, dtype="f32"):
    p = subprocess.run([TG, "fit", data, "--hidden", "128,64", "--epochs", "3", "--batch", "256",
                        "--opt", "adam", "--lr", "0.01", "--standardize", "--seed", str(seed),
                        "--threads", str(threads), "--dtype", dtype, "--save", out],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "fit --threads %d exited %d: %s" % (threads, p.returncode, p.stderr))
    with open(out, "rb") as f:
        return f.read()


with tempfile.TemporaryDirectory(prefix="tg-determinism-") as d:
    data = os.path.join(d, "data.csv")
    rng = random.Random(3)
    with open(data, "w") as f:
        for i in range(1500):
            c = i % 5
            f.write(",".join("%.5f" % (rng.gauss(1.0 if j % 5 == c else 0.0, 1.0)) for j in range(64)))
            f.write(",%d\n" % c)
    for dtype in ("f32", "f64"):
        runs = {}
        for threads in (1, 2):
            a = fit(data, os.path.join(d, "a.tgm"), threads, 11, dtype)
            b = fit(data, os.path.join(d, "b.tgm"), threads, 11, dtype)
            check(len(a) > 100 and a == b,
                  "%s, %d thread(s): two fits with seed 11 give different model files" % (dtype, threads))
            runs[threads] = a
        other = fit(data, os.path.join(d, "c.tgm"), 1, 12, dtype)
        check(other != runs[1], "%s: seeds 11 and 12 give the same model file" % dtype)
        print("%s: 1 thread vs 2 threads: %s" % (dtype, "identical" if runs[1] == runs[2] else "different"))

sys.exit(summary())
