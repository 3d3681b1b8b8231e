"""A run's results and where they live: the run folder's files, loading summaries, tables.

A run folder holds ``config.json`` (what was run, written first), ``records.json`` (one record
per evaluation), ``checkpoint.pt`` (for resuming) and, once it has finished, ``summary.json``.
Several runs make one table: mean ± standard error over seeds, per task and defence, written as
JSON, CSV and Markdown.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

import invariant_aggregator as ia

from .defences import TABLE1_ROWS
from .errors import ExperimentError

METRICS = ("acc_m", "acc_b")

# the files of a run folder
CHECKPOINT = "checkpoint.pt"
RECORDS = "records.json"
SUMMARY = "summary.json"
CONFIG = "config.json"
TABLE = "table"  # table.json / .csv / .md of a table1 folder


def run_file(folder, name: str) -> Path:
    """The path of one of a run folder's files (``CHECKPOINT``, ``RECORDS``, ``SUMMARY``, ``CONFIG``)."""
    if name not in (CHECKPOINT, RECORDS, SUMMARY, CONFIG):
        raise ValueError(f"{name!r} is not a run folder file")
    return Path(folder) / name


def is_finished(folder) -> bool:
    """Whether the run in ``folder`` wrote its summary."""
    return run_file(folder, SUMMARY).exists()


def write_summary(folder, summary: dict) -> None:
    ia.write_json_atomic(run_file(folder, SUMMARY), summary)


def write_records(folder, records: list[dict]) -> None:
    ia.write_json_atomic(run_file(folder, RECORDS), records)


def write_description(folder, description: dict) -> None:
    ia.write_json_atomic(run_file(folder, CONFIG), description)


def load_summaries(folders) -> list[dict]:
    summaries = []
    for folder in folders:
        for path in sorted(Path(folder).rglob(SUMMARY)):
            try:
                summaries.append(json.loads(path.read_text()))
            except json.JSONDecodeError as exc:
                raise ExperimentError(f"{path}: not JSON ({exc}); delete it and re-run that seed") from None
    if not summaries:
        raise ExperimentError(f"no summary.json under {', '.join(map(str, folders))}; run experiments first")
    return summaries


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN for one value)."""
    values = np.asarray(values, float)
    return float(values.mean()), (float(stats.sem(values)) if len(values) > 1 else math.nan)


def table(summaries: list[dict]) -> list[dict]:
    """One row per (task, defence): n seeds, mean and standard error of Acc_M and Acc_B."""
    groups = defaultdict(list)
    for s in summaries:
        groups[(s["task"], s["defence"])].append(s)
    label = {v: k for k, v in TABLE1_ROWS.items()}
    order = list(TABLE1_ROWS.values())
    rows = []
    for (task, defence), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else len(order))
    ):
        seeds = sorted(r["seed"] for r in runs)
        if len(set(seeds)) != len(seeds):
            raise ExperimentError(f"{task}/{defence}: seed listed twice ({seeds}); give each run its own folder")
        row = {
            "task": task,
            "defence": defence,
            "row": label.get(defence, defence),
            "seeds": seeds,
            "rounds": sorted({r["rounds"] for r in runs}),
        }
        for m in METRICS:
            row[m], row[f"{m}_se"] = mean_se([r[m] for r in runs])
        rows.append(row)
    return rows


def to_markdown(rows: list[dict]) -> str:
    out = ["| task | Table 1 row | defence | seeds | Acc_M | Acc_B |", "|---|---|---|---|---|---|"]

    def fmt(m, se):
        return f"{m:.3f} ± {se:.3f}" if not math.isnan(se) else f"{m:.3f}"

    for r in rows:
        out.append(
            f"| {r['task']} | {r['row']} | `{r['defence']}` | {len(r['seeds'])} | "
            f"{fmt(r['acc_m'], r['acc_m_se'])} | {fmt(r['acc_b'], r['acc_b_se'])} |"
        )
    return "\n".join(out) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task", "row", "defence", "n_seeds", "acc_m", "acc_m_se", "acc_b", "acc_b_se"])
    for r in rows:
        writer.writerow(
            [r["task"], r["row"], r["defence"], len(r["seeds"]), r["acc_m"], r["acc_m_se"], r["acc_b"], r["acc_b_se"]]
        )
    return buf.getvalue()


def write_table(rows: list[dict], out) -> list[Path]:
    """``out``.json, .csv and .md, each written atomically."""
    out = Path(out)
    ia.write_json_atomic(out.with_suffix(".json"), rows)
    written = [out.with_suffix(".json")]
    for suffix, text in ((".csv", to_csv(rows)), (".md", to_markdown(rows))):
        ia.write_text_atomic(out.with_suffix(suffix), text)
        written.append(out.with_suffix(suffix))
    return written
