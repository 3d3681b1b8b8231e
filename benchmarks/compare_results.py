"""Are two sets of results the same, wall-clock times aside? For refactors that must not change
a number.

    python benchmarks/compare_results.py BEFORE_DIR AFTER_DIR        # table1 folders
    python benchmarks/compare_results.py BEFORE.json AFTER.json      # linear_theory --json files

For table1 folders: table.json, and for every run its records.json and the metric fields of its
summary.json (Acc_M, Acc_B, loss, rounds, malicious clients, data sizes), compared for exact
equality after dropping the timing fields. Exits 1 on any difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMING = {"seconds", "seconds_per_round", "finished"}
SUMMARY_FIELDS = ("acc_m", "acc_b", "loss", "rounds", "malicious_clients", "trainable_parameters", "data")


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def compare_folders(before: Path, after: Path) -> list[str]:
    differ = []
    tb, ta = json.loads((before / "table.json").read_text()), json.loads((after / "table.json").read_text())
    added = sorted({k for r in ta for k in r} - {k for r in tb for k in r})
    if added:
        print(f"table.json: columns only in {after}: {', '.join(added)} (not compared)")
    if len(tb) != len(ta) or any({k: v for k, v in a.items() if k in b} != b for a, b in zip(ta, tb, strict=False)):
        differ.append("table.json")
    for records in sorted(before.rglob("records.json")):
        rel = records.parent.relative_to(before)
        other = after / rel
        if _strip(json.loads(records.read_text())) != _strip(json.loads((other / "records.json").read_text())):
            differ.append(f"{rel}/records.json")
        sb = json.loads((records.parent / "summary.json").read_text())
        sa = json.loads((other / "summary.json").read_text())
        differ += [f"{rel}/summary.json:{k}" for k in SUMMARY_FIELDS if sb.get(k) != sa.get(k)]
    print(f"{len(list(before.rglob('records.json')))} runs compared")
    return differ


def main(argv=None) -> int:
    before, after = map(Path, (argv or sys.argv[1:]))
    if before.is_dir():
        differ = compare_folders(before, after)
    else:
        a, b = json.loads(before.read_text()), json.loads(after.read_text())
        print(f"{len(a)} / {len(b)} records compared")
        differ = [] if a == b else ["records"]
    print("identical" if not differ else "DIFFERENT: " + ", ".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
