#!/usr/bin/env python3
"""Per-crate line coverage from `cargo llvm-cov report --json --summary-only` (read on stdin).

Groups the report's files by crate (crates/<name>/src/...; test code under crates/<name>/tests is
not counted), reports the Dagger backend's live-only code (crates/core/src/backend/dagger) on a row
of its own, and exits 1 when a crate named with --min NAME=PERCENT is below its floor.
"""
import argparse
import json
import os
import sys

DAGGER = "crates/core/src/backend/dagger/"


def row_of(path: str) -> str | None:
    """The table row a source file counts in, or None for files outside crates/*/src."""
    rel = os.path.relpath(path, os.getcwd()) if os.path.isabs(path) else path
    parts = rel.split(os.sep)
    if len(parts) < 4 or parts[0] != "crates" or parts[2] != "src":
        return None
    if rel.startswith(DAGGER):
        return "core (backend/dagger, live-only)"
    return parts[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--min", action="append", default=[], metavar="CRATE=PERCENT")
    ap.add_argument("--files", action="store_true", help="also list files below 100%%, least covered first")
    args = ap.parse_args()
    report = json.load(sys.stdin)
    rows: dict[str, list[int]] = {}
    files = []
    for data in report["data"]:
        for f in data["files"]:
            row = row_of(f["filename"])
            if row is None:
                continue
            lines = f["summary"]["lines"]
            acc = rows.setdefault(row, [0, 0])
            acc[0] += lines["covered"]
            acc[1] += lines["count"]
            files.append((lines["count"] - lines["covered"], f["filename"], lines["covered"], lines["count"]))

    def pct(c: int, n: int) -> float:
        return 100.0 * c / n if n else 100.0

    print(f"| {'crate':<34} | {'lines':>6} | {'covered':>7} | {'line %':>6} |")
    print(f"|{'-' * 36}|{'-' * 8}|{'-' * 9}|{'-' * 8}|")
    total = [0, 0]
    for name in sorted(rows):
        c, n = rows[name]
        total[0] += c
        total[1] += n
        print(f"| {name:<34} | {n:>6} | {c:>7} | {pct(c, n):>6.1f} |")
    print(f"| {'all crates':<34} | {total[1]:>6} | {total[0]:>7} | {pct(*total):>6.1f} |")
    if args.files:
        print("\nuncovered lines per file (most first):")
        for missing, name, c, n in sorted(files, reverse=True):
            if missing:
                print(f"  {missing:>5} of {n:>5}  {pct(c, n):5.1f}%  {os.path.relpath(name)}")
    failed = []
    for spec in args.min:
        name, _, floor = spec.partition("=")
        try:
            floor_pct = float(floor)
        except ValueError:
            ap.error(f"--min {spec}: expected CRATE=PERCENT, e.g. core=90")
        if name not in rows:
            # A crate with no measured lines is a broken measurement, never a pass.
            failed.append(f"{name}: no lines measured (no such row; rows are {', '.join(sorted(rows))})")
            continue
        c, n = rows[name]
        if pct(c, n) < floor_pct:
            short = -(-(floor_pct * n - 100 * c) // 100)  # lines more to cover to reach the floor
            failed.append(f"{name} {pct(c, n):.1f}% of lines < floor {floor_pct:g}% ({int(short)} more lines needed)")
        else:
            print(f"floor ok: {name} {pct(c, n):.1f}% >= {floor_pct:g}%")
    if failed:
        for f in failed:
            print(f"line coverage below its floor: {f}", file=sys.stderr)
        print("(`... | python3 scripts/coverage-table.py --files` lists the uncovered lines per file)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
