#!/usr/bin/env python3
"""`mpirun -np 2 tapegrad fit` end to end (issue 19):
 - 2 ranks train like 1 process with the same global --batch (float64: the
   same per-epoch losses and test loss to 1e-9; the library test checks the
   parameters themselves), rank 0 alone writes the model;
 - --batch not divisible by the rank count, and models of different shapes
   on the two ranks (mpirun's MPMD form): an error on EVERY rank, no hang;
 - a rank killed with SIGKILL mid-training: mpirun exits non-zero within
   30 s, the output names rank 1, the model file is untouched; and with
   mpirun's abort-on-failure off, rank 0's own timeout names rank 1.
Usage: test_dist_cli.py MPIRUN PATH/TO/tapegrad"""
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

from cli_check import check, summary

MPIRUN, TG = sys.argv[1], sys.argv[2]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
MPI = [MPIRUN, "-np", "2", "--oversubscribe"]


def run(args, env=ENV, timeout=300):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def blobs(path, n, d, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            c = i % 3
            xs = [rng.gauss(1.5 if j == c else 0.0, 1.0) for j in range(d)]
            f.write(",".join(f"{x:.6f}" for x in xs) + f",{c}\n")


def numbers(text, key):
    return [float(v) for v in re.findall(key + r"=([0-9.eE+-]+)", text)]


def epoch_values(out, key):
    """key's values on the epoch lines (the complete one per epoch; under
    mpirun stdout is a terminal, so a line may start with an erase code)."""
    return [float(v) for line in out.splitlines() if "time=" in line
            for v in re.findall(" " + key + r"=([0-9.]+)", line[line.rfind("epoch "):])]


def equivalence(tmp):
    data = os.path.join(tmp, "d.csv")
    blobs(data, 1003, 6, 1)  # 1003·0.7 = 702 train rows: a last batch of 702 % 32 = 30
    common = ["fit", data, "--header", "no", "--epochs", "3", "--batch", "32", "--dtype",
              "f64", "--threads", "1", "--hidden", "16"]
    rc1, out1, err1 = run([TG, *common, "--save", os.path.join(tmp, "one.tgm")])
    rc2, out2, err2 = run([*MPI, TG, *common, "--save", os.path.join(tmp, "two.tgm")])
    check(rc1 == 0 and rc2 == 0, f"fit: rc {rc1} and {rc2}: {err1} {err2}")
    for key in ["loss", "val_loss", "acc"]:
        a, b = epoch_values(out1, key), epoch_values(out2, key)
        check(len(a) == 3 and a == b, f"epoch {key}: 1 process {a}, 2 ranks {b}")
    t1, t2 = numbers(out1, "test: loss"), numbers(out2, "test: loss")
    check(len(t1) == 1 and len(t2) == 1 and abs(t1[0] - t2[0]) <= 1e-9 * abs(t1[0]),
          f"test loss: 1 process {t1}, 2 ranks {t2}")
    check(out2.count("test: loss") == 1, "rank 1 printed too:\n" + out2)
    check(os.path.exists(os.path.join(tmp, "two.tgm")), "no model from rank 0")
    # eval of both models: the same test loss to 1e-9 (one sum's order apart)
    e1 = run([TG, "eval", os.path.join(tmp, "one.tgm"), data, "--header", "no"])[1]
    e2 = run([TG, "eval", os.path.join(tmp, "two.tgm"), data, "--header", "no"])[1]
    l1, l2 = numbers(e1, "loss"), numbers(e2, "loss")
    check(len(l1) == 1 and len(l2) == 1 and abs(l1[0] - l2[0]) <= 1e-9 * l1[0],
          f"eval: {l1} vs {l2}")
    return data


def bad_use(tmp, data):
    t0 = time.time()
    rc, out, err = run([*MPI, TG, "fit", data, "--header", "no", "--batch", "33"], timeout=60)
    text = out + err
    check(rc != 0, f"--batch 33 on 2 ranks: rc {rc}")
    for r in (0, 1):
        check(f"rank {r}: dist: the global batch 33 is not divisible by the 2 ranks" in text,
              f"rank {r}'s message missing:\n{text}")
    # MPMD: rank 0 with 16 hidden units, rank 1 with 8
    base = [TG, "fit", data, "--header", "no", "--batch", "32", "--epochs", "1"]
    rc, out, err = run([MPIRUN, "--oversubscribe", "-np", "1", *base, "--hidden", "16", ":",
                        "-np", "1", *base, "--hidden", "8"], timeout=60)
    text = out + err
    check(rc != 0, f"different shapes: rc {rc}")
    want = "tensor 0 is (16x6) float32 on rank 0, (8x6) float32 on rank 1"  # PyTorch layout
    check(text.count(want) == 2, f"the shape error on both ranks:\n{text}")
    check(time.time() - t0 < 60, "bad use took more than 60 s")


def job_pids(token, rank=None):
    """Pids of the ranks (only rank `rank`, if given) whose command line
    holds token; mpirun itself has no OMPI_COMM_WORLD_RANK."""
    want = b"OMPI_COMM_WORLD_RANK=" + (str(rank).encode() if rank is not None else b"")
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        hit = any(e == want if rank is not None else e.startswith(want) for e in env)
        if hit and token.encode() in cmd:
            pids.append(int(d))
    return pids


def killed(tmp, extra, env, name, want):
    big = os.path.join(tmp, "big.csv")
    if not os.path.exists(big):
        blobs(big, 20000, 20, 2)
    model = os.path.join(tmp, f"kept-{name}.tgm")
    with open(model, "wb") as f:
        f.write(b"the last complete model")
    log = open(os.path.join(tmp, f"{name}.out"), "w+")
    p = subprocess.Popen([*MPI, *extra, TG, "fit", big, "--header", "no", "--epochs", "500",
                          "--batch", "64", "--hidden", "256,256", "--threads", "1", "--save",
                          model], stdout=log, stderr=subprocess.STDOUT, env=env)
    pid, t0 = None, time.time()
    while pid is None and time.time() - t0 < 60 and p.poll() is None:
        time.sleep(0.2)
        pids = job_pids(model, 1)
        pid = pids[0] if pids else None
    time.sleep(2)  # well into training
    check(pid is not None, f"{name}: rank 1 not found")
    if pid is None:
        p.kill()
        return
    os.kill(pid, signal.SIGKILL)
    tk = time.time()
    # Wait for mpirun to end, or (abort off: mpirun 4.1 itself may stay)
    # for the message and for no rank to be left.
    while time.time() - tk < 30 and p.poll() is None:
        time.sleep(0.2)
        log.seek(0)
        if want in log.read() and not job_pids(model):
            break
    took = time.time() - tk
    ended = p.poll()
    if ended is None:
        p.kill()
    p.wait()
    log.seek(0)
    text = log.read()
    check(took < 30, f"{name}: {took:.1f} s after the kill")
    check(ended is None or ended != 0, f"{name}: mpirun exited {ended}")
    check(want in text, f"{name}: no '{want}' in:\n{text[-2000:]}")
    with open(model, "rb") as f:
        check(f.read() == b"the last complete model", f"{name}: the model file changed")
    check(not [f for f in os.listdir(tmp) if f.startswith(f"kept-{name}.tgm.")],
          f"{name}: a temporary file was left")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = equivalence(tmp)
        bad_use(tmp, data)
        # Open MPI's default: mpirun sees rank 1 die and stops rank 0 (SIGTERM),
        # whose handler names the lost rank.
        killed(tmp, [], ENV, "default", "rank 0 stopped by SIGTERM: rank 1 (pid")
        # mpirun not stopping the job: rank 0's timeout (5 s here) does.
        killed(tmp, ["--mca", "orte_abort_on_non_zero_status", "0"],
               dict(ENV, TAPEGRAD_DIST_TIMEOUT="5"), "watchdog", "is gone")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
