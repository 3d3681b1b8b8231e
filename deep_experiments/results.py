"""A run's results and where they live: the run folder's files, loading summaries, tables.

A run folder holds ``config.json`` (what was run, written first), ``records.json`` (one record
per evaluation), ``checkpoint.pt`` (for resuming) and, once it has finished, ``summary.json``.
Several runs make one table: mean ± standard error over seeds, per task and defence, written as
JSON, CSV and Markdown.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

import invariant_aggregator as ia

from .defences import TABLE1_ROWS
from .errors import ExperimentError

METRICS = ("acc_m", "acc_b", "acc_m_last10", "acc_b_last10")

# the files of a run folder
CHECKPOINT = "checkpoint.pt"
RECORDS = "records.json"
SUMMARY = "summary.json"
CONFIG = "config.json"
LOCK = ".lock"  # held (flock) by the run that owns the folder, for its whole life
TABLE = "table"  # table.json / .csv / .md of a table1 folder


class RunFolderLock:
    """An exclusive lock on a run folder, held from construction until :meth:`release` (or until
    the process ends: the operating system drops it with the file descriptor, so a killed run
    never leaves a stale lock). A second run on the same folder is refused at once."""

    def __init__(self, folder):
        import fcntl

        self.path = Path(folder) / LOCK
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+")  # noqa: SIM115 - held for the run's life
        except OSError as exc:
            raise ExperimentError(
                f"cannot use {folder} as a run folder: {exc.strerror}; choose another --out"
            ) from None
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            owner = self._fh.read().strip() or "another process"
            self._fh.close()
            raise ExperimentError(
                f"{folder} is in use by another run ({owner}); wait for it to finish, or give this run another --out"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}")
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __del__(self):
        if hasattr(self, "_fh"):  # a failed open never set it
            self.release()


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files that an atomic write killed mid-way left behind (``.NAME.*.tmp``).
    Only the folder's owner (holding :class:`RunFolderLock`) may call this."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


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


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def comparable_config(config: dict | None) -> dict:
    """What determines a run's results apart from its seed, as flat dotted settings (the runtime
    section and the seed that weak DP's noise inherits from the run are left out)."""
    if config is None:
        return {}
    flat = _flat({k: v for k, v in config.items() if k not in ("runtime", "seed")})
    if flat.get("defence.params.seed") == config.get("seed"):
        flat.pop("defence.params.seed", None)
    return flat


def config_differences(a: dict | None, b: dict | None) -> list[str]:
    """The dotted settings in which two configurations differ, seeds aside ("key: a -> b")."""
    fa, fb = comparable_config(a), comparable_config(b)
    return [
        f"{k}: {fa.get(k, '(unset)')!r} -> {fb.get(k, '(unset)')!r}"
        for k in sorted(fa.keys() | fb.keys())
        if fa.get(k) != fb.get(k)
    ]


def _group_key(config: dict | None) -> str:
    return json.dumps(comparable_config(config), sort_keys=True, default=str)


CLEAN_KEY = "federation.malicious_fraction"


def is_clean_run(summary: dict) -> bool:
    """A defence run without attackers beside its attacked runs (the ``no_attack`` row is FedAvg's
    own Table 1 row, not a clean twin)."""
    cfg = summary.get("config") or {}
    return summary["defence"] != "no_attack" and cfg.get("federation", {}).get("malicious_fraction", 1) == 0


def _metrics(runs: list[dict], suffix: str = "") -> dict:
    out = {}
    for m in METRICS:
        values = [r[m] for r in runs if m in r]
        if len(values) == len(runs):  # (older summaries lack the last-10% means)
            out[f"{m}{suffix}"], out[f"{m}{suffix}_se"] = mean_se(values)
    return out


def table(summaries: list[dict]) -> list[dict]:
    """One row per (task, defence, configuration): n seeds, mean and standard error of Acc_M and
    Acc_B, at the last round and over the last 10 % of rounds. Runs of one defence under
    different configurations are never averaged together: each configuration gets its own row,
    and ``differs`` names the settings that set it apart from the other rows of that task and
    defence; ``params`` holds the defence's resolved hyperparameters. A defence's runs without
    attackers (same configuration but ``federation.malicious_fraction = 0``) fill the row's
    ``*_clean`` columns: its utility without attack beside its robustness."""
    groups, clean = defaultdict(list), defaultdict(list)
    for s in summaries:
        key = (s["task"], s["defence"], _group_key(s.get("config")))
        (clean if is_clean_run(s) else groups)[key].append(s)

    def twin(key) -> tuple | None:  # the clean group of an attacked configuration
        task, defence, config = key
        flat = json.loads(config)
        flat[CLEAN_KEY] = 0.0
        wanted = json.dumps(flat, sort_keys=True, default=str)
        return next((k for k in clean if k[:2] == (task, defence) and _same(k[2], wanted)), None)

    matched = {twin(k) for k in groups} - {None}
    for k in clean.keys() - matched:  # clean runs without attacked twins are rows of their own
        groups[k] = clean[k]
    label = {v: k for k, v in TABLE1_ROWS.items()}
    order = list(TABLE1_ROWS.values())
    rows = []
    for (task, defence, key), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else len(order), kv[0][2])
    ):
        seeds = _seeds(task, defence, runs)
        siblings = [k for (t, d, k) in groups if (t, d) == (task, defence) and k != key]
        mine, others = json.loads(key), [json.loads(k) for k in siblings]
        differs = sorted(
            {
                f"{name}={mine.get(name, '(unset)')!r}"
                for o in others
                for name in mine.keys() | o.keys()
                if mine.get(name) != o.get(name)
            }
        )
        row = {
            "task": task,
            "defence": defence,
            "row": label.get(defence, defence),
            "seeds": seeds,
            "rounds": sorted({r["rounds"] for r in runs}),
            "differs": differs,
            "params": (runs[0].get("config") or {}).get("defence", {}).get("params", {}),
            **_metrics(runs),
        }
        partner = twin((task, defence, key)) if (task, defence, key) not in clean else None
        if partner is not None:
            row["seeds_clean"] = _seeds(task, defence, clean[partner])
            row |= _metrics(clean[partner], "_clean")
        rows.append(row)
    return rows


def row_params(row: dict) -> dict:
    """A table row's defence hyperparameters: ``params``, or for tables written before rows
    carried it, those that ``differs`` names (``defence.params.tau=0.4``)."""
    if "params" in row:
        return dict(row["params"])
    params = {}
    for item in row.get("differs", []):
        name, _, value = item.partition("=")
        if name.startswith("defence.params.") and value != "'(unset)'":
            try:
                params[name.removeprefix("defence.params.")] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                params[name.removeprefix("defence.params.")] = value
    return params


def _same(a: str, b: str) -> bool:
    return json.loads(a) == json.loads(b)


def _seeds(task, defence, runs) -> list[int]:
    seeds = sorted(r["seed"] for r in runs)
    if len(set(seeds)) != len(seeds):
        raise ExperimentError(f"{task}/{defence}: seed listed twice ({seeds}); give each run its own folder")
    return seeds


def _fmt(row: dict, name: str) -> str:
    if name not in row:
        return "—"
    m, se = row[name], row[f"{name}_se"]
    return f"{m:.3f} ± {se:.3f}" if not math.isnan(se) else f"{m:.3f}"


def to_markdown(rows: list[dict]) -> str:
    """Acc_M and Acc_B under attack (last round; mean of the last 10 % of rounds), and Acc_M
    without attack; a not-applicable row says why instead of a number."""
    split = any(r.get("differs") for r in rows)
    out = [
        "| task | Table 1 row | defence | seeds | Acc_M | Acc_B | Acc_M, last 10% | Acc_B, last 10% "
        "| Acc_M without attack |" + (" configuration |" if split else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if split else ""),
    ]
    for r in rows:
        if r.get("not_applicable"):
            out.append(
                f"| {r['task']} | {r['row']} | `{r['defence']}` | — | not applicable: {r['not_applicable']} "
                "| | | | |" + (" |" if split else "")
            )
            continue
        out.append(
            f"| {r['task']} | {r['row']} | `{r['defence']}` | {len(r['seeds'])} | {_fmt(r, 'acc_m')} | "
            f"{_fmt(r, 'acc_b')} | {_fmt(r, 'acc_m_last10')} | {_fmt(r, 'acc_b_last10')} | "
            f"{_fmt(r, 'acc_m_last10_clean')} |"
            + (f" {', '.join(r.get('differs', [])) or '(others differ)'} |" if split else "")
        )
    return "\n".join(out) + "\n"


CSV_COLUMNS = [f"{m}{suffix}{se}" for suffix in ("", "_clean") for m in METRICS for se in ("", "_se")]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task", "row", "defence", "n_seeds", *CSV_COLUMNS, "not_applicable"])
    for r in rows:
        writer.writerow(
            [r["task"], r["row"], r["defence"], len(r.get("seeds", []))]
            + [r.get(c, "") for c in CSV_COLUMNS]
            + [r.get("not_applicable", "")]
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
