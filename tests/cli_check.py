"""The check counter shared by the Python test scripts (test_cli.py,
test_determinism_cli.py): check() records one assertion, summary() prints
"N passed, N failed" like the C tests (check.h) and gives the exit code."""
import sys

_counts = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        _counts["passed"] += 1
    else:
        _counts["failed"] += 1
        print("FAIL:", what, file=sys.stderr)


def summary():
    print(f"{_counts['passed']} passed, {_counts['failed']} failed")
    return 1 if _counts["failed"] else 0
