"""The mechanism, measured: what the AND-mask sees in a round's updates.

Corollary 9's premise is that benign clients give a zero sign on the trigger's coordinates, so
only malicious clients vote there and the mask (tau > 1 - 2N'/N) drops them. In the deep
setting the coordinates that connect to the trigger feature are the first-layer weights of the
trigger column. Per round this records, for those coordinates against all others: the sign
consistency |(1/n) sum sign| over all sampled clients, over the benign ones only and over the
malicious ones only; the share that passes the mask at tau; and the share of benign entries
that are exactly zero (the premise itself). Analysis only: nothing here changes a run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import invariant_aggregator as ia

DEFAULT_TAU = 0.6  # the authors' tau, for rules that have none of their own


def trigger_coordinates(model: nn.Module, layout: ia.ParameterLayout, column: int, n_features: int) -> torch.Tensor:
    """Flat indices of the first-layer weights that read input feature ``column``: the first
    trainable 2-D parameter whose second dimension is the number of features."""
    offset = 0
    for shape in layout.shapes:
        if len(shape) == 2 and shape[1] == n_features:
            return offset + torch.arange(shape[0]) * n_features + column
        offset += shape.numel()
    raise ValueError(f"no first-layer weight with {n_features} input features among {layout.names}")


def _consistency(signs: torch.Tensor) -> torch.Tensor:
    """|mean of signs| per coordinate (NaN with no rows)."""
    if signs.shape[0] == 0:
        return torch.full((signs.shape[1],), math.nan)
    return signs.sum(0).abs() / signs.shape[0]


def sign_statistics(updates: torch.Tensor, malicious: torch.Tensor, trigger: torch.Tensor, tau: float) -> dict:
    """The round's statistics (see the module docstring). ``malicious``: a bool per row;
    ``trigger``: flat indices of the trigger's coordinates."""
    signs = torch.sign(updates.detach().to("cpu", torch.float64))
    need = ia.functional.min_agreeing_signs(signs.shape[0], tau)
    passes = signs.sum(0).abs() >= need
    is_trigger = torch.zeros(signs.shape[1], dtype=torch.bool)
    is_trigger[trigger] = True
    benign, bad = signs[~malicious], signs[malicious]
    out = {"tau": tau, "kept_fraction": float(passes.double().mean()), "malicious": int(malicious.sum())}
    for part, where in (("trigger", is_trigger), ("other", ~is_trigger)):
        out[part] = {
            "consistency": float(_consistency(signs[:, where]).mean()),
            "consistency_benign": float(_consistency(benign[:, where]).mean()),
            "consistency_malicious": float(_consistency(bad[:, where]).mean()),
            "pass_rate": float(passes[where].double().mean()),
            "benign_zero_share": float((benign[:, where] == 0).double().mean()) if len(benign) else math.nan,
        }
    return out


def _nanmean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def mean_statistics(stats: list[dict]) -> dict:
    """The mean of each statistic over several :func:`sign_statistics` results (NaN entries,
    e.g. a round without a malicious client, are left out of that statistic's mean)."""
    out = {"tau": stats[0]["tau"], "kept_fraction": _nanmean([d["kept_fraction"] for d in stats])}
    for part in ("trigger", "other"):
        out[part] = {k: _nanmean([d[part][k] for d in stats]) for k in stats[0][part]}
    return out


def summarise(records: list[dict]) -> dict:
    """A run's means over the rounds that recorded diagnostics."""
    diag = [r["diagnostics"] for r in records if "diagnostics" in r]
    return {"rounds": len(diag), **mean_statistics(diag)} if diag else {}


FIELDS = ("consistency", "consistency_benign", "consistency_malicious", "pass_rate", "benign_zero_share")


def mechanism_rows(summaries: list[dict]) -> list[dict]:
    """Per (task, defence): the seeds' means of each diagnostic, trigger coordinates against the
    others, flattened (summaries without diagnostics are skipped)."""
    groups: dict[tuple, list[dict]] = {}
    for s in summaries:
        if s.get("diagnostics"):
            groups.setdefault((s["task"], s["defence"]), []).append(s["diagnostics"])
    rows = []
    for (task, defence), diags in sorted(groups.items()):
        means = mean_statistics(diags)
        row = {"task": task, "defence": defence, "seeds": len(diags), "tau": means["tau"]}
        row["kept_fraction"] = means["kept_fraction"]
        row |= {f"{part}_{f}": means[part][f] for part in ("trigger", "other") for f in FIELDS}
        rows.append(row)
    return rows


def mechanism_markdown(rows: list[dict]) -> str:
    out = [
        "| task | defence | seeds | tau | kept | coordinates | consistency | benign | malicious | pass rate "
        "| benign zero |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for part in ("trigger", "other"):
            out.append(
                f"| {r['task']} | `{r['defence']}` | {r['seeds']} | {r['tau']} | {r['kept_fraction']:.3f} | {part} | "
                + " | ".join(f"{r[f'{part}_{f}']:.3f}" for f in FIELDS)
                + " |"
            )
    return "\n".join(out) + "\n"
