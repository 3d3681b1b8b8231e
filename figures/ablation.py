"""The D.2 ablation at small scale: the AND-mask against the mean/variance-ratio filter keeping as
many coordinates (each with the trimmed mean), and each half alone; Acc_M without attack and
under attack, and Acc_B, per task (mean +- SE). Reads ``TASK-ablation.table.json``."""

from __future__ import annotations

import math

from deep_experiments.results import row_params

from .inputs import tables
from .style import MARKERS, OKABE_ITO, new_figure

NAME = "ablation"
INPUTS = ("TASK-ablation.table.json",)
NAMES = {
    "invariant": "AND-mask + TM",
    "mean_ratio": "ratio + TM",
    "and_mask": "AND-mask alone",
    "trimmed_mean": "TM alone",
}
METRICS = (("acc_m_clean", "Acc_M without attack"), ("acc_m", "Acc_M under attack"), ("acc_b", "Acc_B under attack"))


def _label(r) -> str:
    p = row_params(r)
    tau = p.get("tau", p.get("match_tau"))
    return NAMES.get(r["defence"], r["defence"]) + (f", tau {tau:g}" if tau is not None else "")


def draw(results):
    found = tables(results, "ablation")
    fig, axes = new_figure(3.4 * len(found) + 0.6, 3.4, 1, len(found), sharey=True)
    for ax, (task, rows) in zip(axes[0], found.items(), strict=True):
        rows = [r for r in rows if r.get("seeds")]
        rows.sort(key=lambda r: (row_params(r).get("tau", row_params(r).get("match_tau", 9)), r["defence"]))
        labels = [_label(r) for r in rows]
        for k, (metric, name) in enumerate(METRICS):
            xs = [r.get(metric, math.nan) for r in rows]
            errs = [0.0 if math.isnan(r.get(f"{metric}_se", math.nan)) else r[f"{metric}_se"] for r in rows]
            ax.errorbar(
                xs,
                [i + (k - 1) * 0.22 for i in range(len(rows))],
                xerr=errs,
                fmt=MARKERS[k],
                color=OKABE_ITO[(5, 3, 6)[k]],
                markersize=4,
                elinewidth=0.8,
                capsize=1.5,
                label=name,
            )
        ax.set_yticks(range(len(rows)), labels)
        ax.set_xlim(-0.03, 1.03)
        ax.set_xlabel("accuracy (fraction)")
        ax.set_title(task)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("Ablation: AND-mask vs mean/variance-ratio filter at matched share kept (TM: trimmed mean)")
    return fig
