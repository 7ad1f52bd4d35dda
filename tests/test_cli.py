#!/usr/bin/env python3
"""End-to-end tests of the tapegrad CLI on small generated CSV files:
fit, eval, predict, graph, gradcheck, ops; bad arguments (exit 2) and bad
data (exit 1, one line naming file, line and column); the SVG plot is
well-formed XML and the DOT graph is accepted by `dot` when installed.
Usage: test_cli.py PATH/TO/tapegrad"""
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

from cli_check import check, summary
import xml.etree.ElementTree as ET

TG = sys.argv[1]


def run(*args):
    p = subprocess.run([TG, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def write_blobs(path, n, classes, seed, header=True):
    """Gaussian blobs, one per class, 4 features; the label is last."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        if header:
            f.write("a,b,c,d,label\n")
        for i in range(n):
            c = i % classes
            xs = [rng.gauss(3.0 if j == c else 0.0, 1.0) * 10 + 5 for j in range(4)]
            f.write(",".join(f"{x:.6f}" for x in xs) + f",{c}\n")


def write_regression(path, n, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            x = [rng.uniform(-1, 1) for _ in range(3)]
            y = 2 * x[0] - x[1] + 0.5 * x[2] + 0.01 * rng.gauss(0, 1)
            f.write(",".join(f"{v:.6f}" for v in x + [y]) + "\n")


def final_line(out, name):
    for line in out.splitlines():
        if line.startswith(name + ": loss="):
            parts = dict(kv.split("=") for kv in line.split(": ", 1)[1].split())
            return float(parts["loss"]), parts.get("accuracy")
    return None


def final_metrics(out, name):
    """The regression line: {loss, rmse, mae, r2} as floats."""
    for line in out.splitlines():
        if line.startswith(name + ": loss="):
            return {k: float(v) for k, v in
                    (kv.split("=") for kv in line.split(": ", 1)[1].split())}
    return None


def test_fit_eval_predict(d):
    train, test = os.path.join(d, "train.csv"), os.path.join(d, "test.csv")
    write_blobs(train, 600, 3, 1)
    write_blobs(test, 150, 3, 2)
    model, plot, log = (os.path.join(d, n) for n in ("m.tgm", "loss.svg", "log.csv"))
    rc, out, err = run("fit", train, "--test-data", test, "--hidden", "16,8", "--epochs", "8",
                       "--batch", "32", "--lr", "0.01", "--standardize", "--seed", "3", "--save", model,
                       "--plot", plot, "--log", log)
    check(rc == 0, f"fit exit {rc}: {err}")
    check("loss ce" in out, "fit picks ce for 3 classes: " + out[:200])
    check(out.count("epoch ") == 8, "one line per epoch when not on a terminal")
    res = final_line(out, "test")
    check(res is not None and float(res[1]) > 0.9, f"test accuracy on separable blobs: {res}")
    # eval of the saved model on the same test file reproduces fit's final line
    rc, out2, err = run("eval", model, test)
    res2 = final_line(out2, "test")
    check(rc == 0 and res2 is not None and res is not None and
          abs(res2[0] - res[0]) < 1e-4 and res2[1] == res[1],
          f"eval reproduces fit's test scores: {res} vs {res2} {err}")
    rc, out3, err = run("predict", model, test)
    preds = out3.split()
    check(rc == 0 and len(preds) == 150, f"predict prints one class per row ({len(preds)})")
    labels = [int(l.rsplit(",", 1)[1]) for l in open(test).read().split("\n")[1:] if l]
    acc = sum(int(p) == y for p, y in zip(preds, labels)) / max(1, len(labels))
    # the final line prints 4 decimals: agreement to half a unit in the last place
    check(res is not None and abs(acc - float(res[1])) <= 5e-5 + 1e-12,
          f"predict agrees with eval's accuracy: {acc} vs {res}")
    try:
        root = ET.parse(plot).getroot()
        check(root.tag.endswith("svg") and len(root.findall(".//{*}polyline")) >= 1,
              "SVG has a polyline")
    except ET.ParseError as e:
        check(False, f"SVG is not well-formed XML: {e}")
    rows = open(log).read().splitlines()
    check(rows[0].startswith("epoch,loss") and len(rows) == 9, f"CSV log has 8 epochs: {rows[:2]}")
    rc, dot, err = run("graph", model)
    check(rc == 0 and dot.startswith("digraph") and "matmul" in dot, f"graph prints DOT: {err}")
    if shutil.which("dot"):
        p = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        check(p.returncode == 0 and "<svg" in p.stdout, "dot -Tsvg accepts the graph")
    else:
        print("note: graphviz not installed; dot check skipped")


def test_binary_and_regression(d):
    path = os.path.join(d, "bin.csv")
    write_blobs(path, 300, 2, 4, header=False)
    rc, out, err = run("fit", path, "--epochs", "5", "--label", "last", "--opt", "sgd",
                       "--lr", "0.1", "--act", "tanh", "--dtype", "f64")
    check(rc == 0 and "loss bce" in out, f"two classes pick bce: {err}")
    check(final_line(out, "test") is not None, "test split by default")
    reg = os.path.join(d, "reg.csv")
    write_regression(reg, 400, 5)
    rc, out, err = run("fit", reg, "--epochs", "30", "--test", "0", "--hidden", "none",
                       "--opt", "adam", "--lr", "0.05")
    res = final_line(out, "validation")
    check(rc == 0 and "loss mse" in out and res is not None and res[1] is None,
          f"non-integer label picks mse, validation line: {out[-200:]} {err}")
    check(res is not None and res[0] < 0.01, f"linear target learned: {res}")


def test_bad_arguments(d):
    for args in (["fit"], ["fit", "x.csv", "--epochs", "0"], ["fit", "x.csv", "--lr", "abc"],
                 ["fit", "x.csv", "--act", "swish"], ["fit", "x.csv", "--bogus", "1"],
                 ["fit", "x.csv", "--hidden", "12,,3"], ["fit", "x.csv", "--batch"],
                 ["eval", "only-model"], ["frobnicate"], [], ["fit", "x.csv", "--val", "0.7",
                                                               "--test", "0.5"],
                 ["fit", "x.csv", "--threads", "0"], ["fit", "x.csv", "--threads", "65"]):
        rc, out, err = run(*args)
        first = err.splitlines()[0] if err else ""
        check(rc == 2 and first.startswith("tapegrad") and "usage:" in err,
              f"{args}: exit {rc}, stderr {err[:120]!r}")


def test_bad_data(d):
    bad = os.path.join(d, "bad.csv")
    with open(bad, "w") as f:
        f.write("a,b,label\n1,2,0\n3,x4,1\n")
    rc, out, err = run("fit", bad)
    check(rc == 1 and len(err.strip().splitlines()) == 1 and "bad.csv:3:2" in err,
          f"malformed cell: exit {rc}, {err!r}")
    with open(bad, "w") as f:
        f.write("1,2,0\n3,4\n")
    rc, out, err = run("fit", bad)
    check(rc == 1 and "bad.csv:2:3: row has 2 cells" in err and len(err.strip().splitlines()) == 1,
          f"ragged row: exit {rc}, {err!r}")
    rc, out, err = run("fit", os.path.join(d, "missing.csv"))
    check(rc == 1 and "missing.csv" in err, f"missing file: {rc} {err!r}")
    junk = os.path.join(d, "junk.tgm")
    with open(junk, "wb") as f:
        f.write(b"not a model at all")
    rc, out, err = run("eval", junk, bad)
    check(rc == 1 and "junk.tgm" in err, f"corrupt model: {rc} {err!r}")
    rc, out, err = run("fit", "idx:" + os.path.join(d, "nothing"))
    check(rc == 1 and len(err.strip().splitlines()) == 1, f"missing idx: {rc} {err!r}")
    # a model for 4 features against 2-feature data
    good = os.path.join(d, "g.csv")
    write_blobs(good, 60, 2, 9)
    model = os.path.join(d, "g.tgm")
    run("fit", good, "--epochs", "1", "--save", model)
    with open(bad, "w") as f:
        f.write("1,2,0\n3,4,1\n")
    rc, out, err = run("eval", model, bad)
    check(rc == 1 and "features" in err, f"feature count mismatch: {rc} {err!r}")


def fit_rows(path, *extra):
    """fit on every row (no split); the row count from the 'fit:' line."""
    rc, out, err = run("fit", path, "--epochs", "1", "--val", "0", "--test", "0", *extra)
    first = out.splitlines()[0] if out else ""
    n = int(first.split()[1]) if first.startswith("fit: ") else None
    return rc, n, err


def test_csv_good_cases(d):
    """Issue 12 §3: every row is trained on, whatever the line ends or BOM."""
    rows = "1,2,1\n3,4,0\n5,6,1\n"
    cases = [("bom.csv", b"\xef\xbb\xbf0.5,1.5,0\n" + rows.encode(), 4),
             ("bomhdr.csv", b"\xef\xbb\xbfa,b,y\n" + rows.encode(), 3),
             ("cr.csv", b"a,b,y\r1,2,1\r3,4,0\r5,6,1", 3),
             ("crlf.csv", b"0.5,1.5,0\r\n1,2,1\r\n\r\n3,4,0\r\n", 3),
             ("noend.csv", b"1,2,1\n3,4,0", 2)]
    for name, data, want in cases:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        rc, n, err = fit_rows(path)
        check(rc == 0 and n == want and err == "", f"{name}: exit {rc}, {n} rows, want {want}: {err!r}")
    # A nan-looking first line: data (an error, below) unless --header yes.
    nanfirst = os.path.join(d, "nanfirst.csv")
    with open(nanfirst, "w") as f:
        f.write("0.5,nan,0\n" + rows)
    rc, n, err = fit_rows(nanfirst, "--header", "yes")
    check(rc == 0 and n == 3, f"--header yes skips the nan line: exit {rc}, {n} rows, {err!r}")
    # Text and numbers on line 1: a header, said in one stderr line.
    guess = os.path.join(d, "guess.csv")
    with open(guess, "w") as f:
        f.write("id,0.5,y\n" + rows)
    rc, n, err = fit_rows(guess)
    check(rc == 0 and n == 3 and len(err.splitlines()) == 1 and
          "guess.csv:1: taken as a header" in err and "--header no" in err,
          f"the guess is said: exit {rc}, {n} rows, {err!r}")
    rc, n, err = fit_rows(guess, "--header", "no")
    check(rc == 1 and err.strip().endswith("guess.csv:1:1: 'id' is not a number"),
          f"--header no reads line 1 as data: exit {rc}, {err!r}")
    # float32 refuses 1e39; float64 holds it.
    big = os.path.join(d, "big.csv")
    with open(big, "w") as f:
        f.write(rows + "1e39,1,0\n")
    rc, n, err = fit_rows(big, "--dtype", "f64")
    check(rc == 0 and n == 4, f"--dtype f64 holds 1e39: exit {rc}, {n} rows, {err!r}")


def test_csv_bad_cases(d):
    """Issue 12 §3: exit 1 and one line naming file, line and column; no raw
    control character from the file on the terminal."""
    rows = "1,2,1\n3,4,0\n"
    cases = [("nan1.csv", "0.5,nan,0\n" + rows, ":1:2: 'nan' is not a finite number"),
             ("empty1.csv", "0.5,,0\n" + rows, ":1:2: empty cell: a data row needs a number in each"),
             ("na.csv", rows + "7,NA,1\n", ":3:2: 'NA' is not a finite number"),
             ("inf.csv", rows + "inf,1,1\n", ":3:1: 'inf' is not a finite number"),
             ("emptyrow.csv", "a,b,y\n" + rows + "5,,1\n", ":4:2: empty cell: a data row needs a number in each"),
             ("f32.csv", rows + "1e39,1,0\n",
              ":3:1: '1e39' is too large for float32: load as float64 (--dtype f64)"),
             ("f64.csv", rows + "1,1e999,0\n", ":3:2: '1e999' is too large for float64"),
             ("label.csv", rows + "1,2,-1e40\n", ":3:3: '-1e40' is too large for float32: load as float64 (--dtype f64)"),
             ("ctl.csv", rows + "1,\x1b[2J\x07,0\r\n", ":3:2: '\\x1B[2J\\x07' is not a number"),
             ("crcell.csv", "a,b,y\r\n1,2,1\r\n3,4x\r5,0\r\n", ":3:3: row has 2 cells, expected 3"),
             ("ragged.csv", rows + "1,2\n", ":3:3: row has 2 cells, expected 3"),
             ("title.csv", "My data\n" + rows, ":2:2: row has 3 cells, the header (line 1) has 1")]
    for name, text, msg in cases:
        path = os.path.join(d, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        rc, out, err = run("fit", path, "--epochs", "1")
        lines = err.strip().split("\n")
        check(rc == 1 and len(lines) == 1 and lines[0] == f"tapegrad: {path}{msg}" and
              not any(ord(c) < 32 and c != "\n" for c in err) and "epoch" not in out,
              f"{name}: exit {rc}, {err!r}, want {msg!r}")


def read_only_dir(d):
    """A folder no file can be created in: chmod 0555, or where that does not
    stop us (root), /sys, which refuses new files to root too. None if none."""
    ro = os.path.join(d, "ro")
    os.mkdir(ro)
    os.chmod(ro, 0o555)
    try:
        open(os.path.join(ro, "probe"), "w").close()
    except OSError:
        return ro
    os.unlink(os.path.join(ro, "probe"))
    try:
        open("/sys/tapegrad-probe", "w").close()
    except OSError:
        return "/sys"
    return None


def test_outputs_checked_first(d):
    """Issue 12 §5: an output that cannot be written fails before training:
    exit 1, one line, nothing on stdout; no temporary file left."""
    data = os.path.join(d, "ok.csv")
    write_blobs(data, 200, 2, 11)
    ro = read_only_dir(d)
    outs = [("--save", d, "is a directory"),
            ("--save", os.path.join(d, "nodir", "m.tgm"), "No such file or directory"),
            ("--plot", d, "is a directory"),
            ("--log", os.path.join(d, "nodir", "l.csv"), "No such file or directory")]
    if ro:
        outs.append(("--save", os.path.join(ro, "m.tgm"), "Permission denied"))
    else:
        print("note: no read-only folder found; that case skipped")
    for opt, path, why in outs:
        rc, out, err = run("fit", data, "--epochs", "50", opt, path)
        check(rc == 1 and out == "" and len(err.strip().splitlines()) == 1 and
              err.startswith(f"tapegrad: {path}:") and why in err,
              f"{opt} {path}: exit {rc}, stdout {out[:80]!r}, {err!r}")
    if ro and ro != "/sys":
        check(os.listdir(ro) == [], f"the check left files: {os.listdir(ro)}")
        os.chmod(ro, 0o755)


def test_detect_anomaly(d):
    """Features of 1e30 and a huge learning rate overflow float32 within a
    few steps: --detect-anomaly stops at the first op with a NaN/Inf, and
    without it the first non-finite loss stops the run."""
    path = os.path.join(d, "huge.csv")
    with open(path, "w") as f:
        for i in range(64):
            f.write(f"{1e30 * (1 + i % 7)},{-3e29 * (i % 5)},{i % 2}\n")
    args = ["fit", path, "--opt", "sgd", "--lr", "1000", "--epochs", "3", "--batch", "8"]
    rc, out, err = run(*args, "--detect-anomaly")
    # the model names the layer before the op ("tapegrad: layer 0 (dense): ... anomaly: ...")
    check(rc == 1 and err.startswith("tapegrad: ") and "anomaly: op " in err
          and len(err.strip().splitlines()) == 1,
          f"anomaly reported: exit {rc}, {err!r}")
    # Without the flag the run stops at the first non-finite training loss
    # (it used to train on NaN and exit 0), one line, and a model saved
    # before is left as it was.
    model = os.path.join(d, "kept.tgm")
    with open(model, "wb") as f:
        f.write(b"the user's last good model")
    rc, out, err = run(*args, "--save", model)
    check(rc == 1 and len(err.strip().splitlines()) == 1
          and "training loss is " in err and "at epoch 1" in err,
          f"a NaN/inf loss stops the run: exit {rc}, {err!r}")
    with open(model, "rb") as f:
        check(f.read() == b"the user's last good model", "the saved model is untouched")


def test_gradcheck_ops():
    rc, out, err = run("gradcheck")
    rows = [l for l in out.splitlines() if l.endswith("PASS") or l.endswith("FAIL")]
    rc2, ops, _ = run("ops")
    n_ops = len(ops.splitlines()) - 1
    check(rc == 0 and len(rows) == n_ops and all(r.endswith("PASS") for r in rows),
          f"gradcheck: every op passes ({len(rows)} rows, {n_ops} ops): {err}")
    check(rc2 == 0 and "matmul" in ops and "softmax_ce" in ops, "ops lists the table")


def project_version():
    """meson.build's `version : 'X'`, the known right answer of --version."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "meson.build")) as f:
        for line in f:
            if line.strip().startswith("version"):
                return line.split("'")[1]
    return None


# Every option the parser accepts, and the commands that take it.
FIT_OPTIONS = ["--test-data", "--label", "--header", "--hidden", "--act", "--loss", "--opt",
               "--lr", "--epochs", "--batch", "--val", "--test", "--standardize", "--seed",
               "--dtype", "--threads", "--save", "--plot", "--log", "--detect-anomaly"]
COMMAND_OPTIONS = {"fit": FIT_OPTIONS,
                   "eval": ["--label", "--header", "--batch", "--threads"],
                   "predict": ["--label", "--header", "--batch"],
                   "gradcheck": ["--seed"], "graph": [], "ops": []}


def option_line(out, name):
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == [name] or line.strip().startswith(name + " "):
            # a long value list puts the text on the next line
            return line + (" " + lines[i + 1] if "(default:" not in line and i + 1 < len(lines)
                           else "")
    return ""


def test_version_help():
    rc, out, err = run("--version")
    check(rc == 0 and out == f"tapegrad {project_version()}\n" and err == "",
          f"--version prints the meson project version: {rc} {out!r} {err!r}")
    check(project_version() == "0.1.0", "meson project version 0.1.0")
    for cmd, opts in COMMAND_OPTIONS.items():
        for flag in ("--help", "-h"):
            rc, out, err = run(cmd, flag)
            missing = [o for o in opts if o not in out]
            check(rc == 0 and out.startswith("usage:") and f"tapegrad {cmd}" in out
                  and not missing and err == "",
                  f"{cmd} {flag}: exit {rc}, missing {missing}, stderr {err[:80]!r}")
        for o in opts:  # each option with a value states its default
            if o != "--help":
                line = option_line(out, o)
                check("(default: " in line, f"{cmd} --help gives {o}'s default: {line!r}")
    rc, out, err = run("--help")
    missing = [o for o in FIT_OPTIONS + ["--version"] if o not in out]
    check(rc == 0 and not missing, f"--help: exit {rc}, missing {missing}")
    rc, out, _ = run("fit")
    check(rc == 2, "fit without DATA is still a usage error")
    rc, out, err = run("fit", "x.csv", "--batch", "--help")
    check(rc == 0 and out.startswith("usage:"), "--help wins wherever it is")
    rc, out, _ = run("fit", "--help")
    check("(default: adam)" in option_line(out, "--opt")
          and "1e-3" in option_line(out, "--lr"), "fit --help: Adam, lr 1e-3 by default")


def write_linear(path, n, seed, offset=0.0, scale=1.0):
    """y = offset + scale·(2a − b + 0.5c) + noise of sd 0.01·scale."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            x = [rng.uniform(-1, 1) for _ in range(3)]
            y = offset + scale * (2 * x[0] - x[1] + 0.5 * x[2] + 0.01 * rng.gauss(0, 1))
            f.write(",".join(f"{v:.6f}" for v in x + [y]) + "\n")


def targets(path):
    with open(path) as f:
        return [float(l.rsplit(",", 1)[1]) for l in f if l.strip()]


def reference_metrics(pred, y):
    """RMSE, MAE and R² (sklearn's r2_score: 1 − SSE/SST about y's mean)."""
    n = len(y)
    sse = sum((p - t) ** 2 for p, t in zip(pred, y))
    mean = sum(y) / n
    sst = sum((t - mean) ** 2 for t in y)
    return {"rmse": math.sqrt(sse / n), "mae": sum(abs(p - t) for p, t in zip(pred, y)) / n,
            "r2": 1 - sse / sst, "loss": sse / n}


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def test_regression_metrics(d):
    train, test = os.path.join(d, "rtrain.csv"), os.path.join(d, "rtest.csv")
    write_linear(train, 500, 11)
    write_linear(test, 120, 12)
    model, log = os.path.join(d, "r.tgm"), os.path.join(d, "r.csv")
    rc, out, err = run("fit", train, "--test-data", test, "--epochs", "4", "--hidden", "8",
                       "--save", model, "--log", log, "--dtype", "f64")
    epochs = [l for l in out.splitlines() if l.startswith("epoch ")]
    check(rc == 0 and len(epochs) == 4 and all(
        " rmse=" in l and " mae=" in l and " r2=" in l and " val_r2=" in l and "nan" not in l
        and "acc=" not in l for l in epochs), f"regression epochs report RMSE/MAE/R²: {epochs[:1]}")
    got = final_metrics(out, "test")
    rc2, pout, perr = run("predict", model, test)
    pred = [float(v) for v in pout.split()]
    ref = reference_metrics(pred, targets(test))
    # fit's test line and predict compute the same f64 forward; the line
    # prints 6 significant digits, predict 9: 1e-5 relative covers both.
    check(rc2 == 0 and got is not None and all(close(got[k], ref[k], 1e-5) for k in ref),
          f"test line = metrics of predict's output: {got} vs {ref}")
    rc3, eout, _ = run("eval", model, test)
    ev = final_metrics(eout, "test")
    check(rc3 == 0 and ev is not None and all(close(ev[k], ref[k], 1e-5) for k in ref),
          f"eval's line = metrics of predict's output: {ev} vs {ref}")
    with open(log) as f:
        head = f.readline().strip()
    check(head == "epoch,loss,rmse,mae,r2,val_loss,val_rmse,val_mae,val_r2,seconds",
          f"regression log columns: {head}")


def test_target_standardized(d):
    # A target far from mean 0 / std 1: y ≈ 1000 + 100·(…), noise sd 1.
    train, test = os.path.join(d, "strain.csv"), os.path.join(d, "stest.csv")
    write_linear(train, 500, 21, offset=1000, scale=100)
    write_linear(test, 150, 22, offset=1000, scale=100)
    model = os.path.join(d, "s.tgm")
    args = ["fit", train, "--test-data", test, "--epochs", "40", "--hidden", "none",
            "--lr", "0.05", "--dtype", "f64"]
    rc, out, err = run(*args, "--standardize", "--save", model)
    got = final_metrics(out, "test")
    rc2, pout, _ = run("predict", model, test)
    pred = [float(v) for v in pout.split()]
    ref = reference_metrics(pred, targets(test))
    check(rc == 0 and rc2 == 0 and got is not None
          and all(close(got[k], ref[k], 1e-5) for k in ref),
          f"standardised target: test line = predict's metrics in original units: {got} {ref}")
    # A linear model reaches the noise (sd 1) in original units.
    check(ref["rmse"] < 3 and ref["r2"] > 0.999 and abs(sum(pred) / len(pred) - 1000) < 30,
          f"predictions come back in the original units: {ref}, mean {sum(pred) / len(pred)}")
    rc, out, _ = run(*args)
    raw = final_metrics(out, "test")
    check(raw is not None and raw["rmse"] > 10 * ref["rmse"],
          f"without --standardize the same run is far worse: {raw}")


def test_classification_lines(d):
    path = os.path.join(d, "cls.csv")
    write_blobs(path, 300, 3, 7)
    rc, out, _ = run("fit", path, "--epochs", "2")
    epochs = [l for l in out.splitlines() if l.startswith("epoch ")]
    pat = re.compile(r"^epoch \d+/2 loss=[0-9.]+ acc=[0-9.]+ val_loss=[0-9.]+ "
                     r"val_acc=[0-9.]+ time=[0-9.]+s$")
    check(rc == 0 and len(epochs) == 2 and all(pat.match(l) for l in epochs),
          f"classification epoch lines unchanged: {epochs}")
    check(re.search(r"^test: loss=[0-9.]+ accuracy=[0-9.]+$", out, re.M) is not None,
          "classification test line unchanged")


def test_default_optimizer(d):
    path = os.path.join(d, "opt.csv")
    write_blobs(path, 300, 3, 8)
    strip = lambda o: [re.sub(r" time=\S+", "", l) for l in o.splitlines()]
    _, a, _ = run("fit", path, "--epochs", "3", "--threads", "1")
    _, b, _ = run("fit", path, "--epochs", "3", "--threads", "1", "--opt", "adam", "--lr", "1e-3")
    _, c, _ = run("fit", path, "--epochs", "3", "--threads", "1", "--opt", "sgd")
    check(strip(a) == strip(b) and strip(a) != strip(c),
          "the default optimizer is Adam with lr 1e-3 (same run, not SGD's)")


def main():
    d = tempfile.mkdtemp(prefix="tapegrad-cli-")
    try:
        test_fit_eval_predict(d)
        test_binary_and_regression(d)
        test_bad_arguments(d)
        test_bad_data(d)
        test_csv_good_cases(d)
        test_csv_bad_cases(d)
        test_outputs_checked_first(d)
        test_gradcheck_ops()
        test_version_help()
        test_regression_metrics(d)
        test_target_standardized(d)
        test_classification_lines(d)
        test_default_optimizer(d)
        test_detect_anomaly(d)
    finally:
        shutil.rmtree(d)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
