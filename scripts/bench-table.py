#!/usr/bin/env python3
"""Prints the table of a `make bench` run from its JSON-lines results (one figure per line: figure, value, unit,
goal, reference) and writes them as one JSON document for comparison between runs.

Usage: bench-table.py RESULTS.jsonl OUT.json
"""
import json
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    rows = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                print(f"{sys.argv[1]}:{n}: not a figure: {e}", file=sys.stderr)
                return 1
    headers = ["figure", "value", "goal", "same-run reference"]
    table = [[r["figure"], f'{r["value"]:.2f} {r["unit"]}', r.get("goal", ""), r.get("reference", "")] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in table:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump({"figures": rows}, f, indent=2)
    print(f"\n{len(rows)} figures written to {sys.argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
