#!/usr/bin/env python3
"""docs/ops.md and README.md cannot drift from the op table: every op that
`tapegrad ops` lists (src/ops/table.c) has exactly one row in the table of
docs/ops.md's "## The op table" section (its first cell the name in
backticks), every such row names an op that exists, and every row has all
seven cells filled in; README.md's "## Ops" table names every op.
Usage: test_docs_ops.py PATH/TO/tapegrad SOURCE_ROOT"""
import os
import re
import subprocess
import sys

from cli_check import check, summary

TG, ROOT = sys.argv[1], sys.argv[2]
COLUMNS = 7  # op, formula, shapes, broadcasting, d-map, r-map, domain
ROW = re.compile(r"^\|\s*`([A-Za-z0-9_]+)`\s*\|")


def table_ops():
    p = subprocess.run([TG, "ops"], capture_output=True, text=True, timeout=60)
    lines = p.stdout.splitlines()
    check(p.returncode == 0 and lines and lines[0].startswith("op"),
          f"`tapegrad ops` runs and prints its header: {p.stderr}")
    return [l.split()[0] for l in lines[1:] if l.strip()]


def section(path, heading):
    """The lines of `heading` up to the next heading of its level."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    level = heading.split()[0]
    if heading not in lines:
        check(False, f"{path}: no section {heading!r}")
        return []
    out = []
    for l in lines[lines.index(heading) + 1:]:
        if l.startswith(level + " "):
            break
        out.append(l)
    return out


def cells(line):
    """A table row's cells; `\\|` is a pipe inside a cell."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def main():
    ops = table_ops()
    check(len(ops) == len(set(ops)) and len(ops) > 0, f"the op table lists {len(ops)} ops")

    doc = os.path.join(ROOT, "docs", "ops.md")
    rows = [l for l in section(doc, "## The op table") if ROW.match(l)]
    names = [ROW.match(l).group(1) for l in rows]
    missing = [o for o in ops if o not in names]
    unknown = [n for n in names if n not in ops]
    twice = sorted({n for n in names if names.count(n) > 1})
    check(not missing, f"docs/ops.md: ops of the table without a row: {missing}")
    check(not unknown, f"docs/ops.md: rows naming no op of the table: {unknown}")
    check(not twice, f"docs/ops.md: ops with more than one row: {twice}")
    bad = [n for n, l in zip(names, rows)
           if len(cells(l)) != COLUMNS or not all(cells(l))]
    check(not bad, f"docs/ops.md: rows without exactly {COLUMNS} filled cells: {bad}")

    readme = os.path.join(ROOT, "README.md")
    listed = set()
    for l in section(readme, "## Ops"):
        if l.startswith("|"):
            listed |= set(re.findall(r"`([A-Za-z0-9_]+)`", l))
    missing = [o for o in ops if o not in listed]
    check(not missing, f"README.md: ops missing from the Ops table: {missing}")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
