"""The mechanism, measured in the deep runs: per task and rule, the share of the trigger's
coordinates that pass the AND-mask against the share of all other coordinates, and the share of
benign clients' trigger-coordinate updates that are exactly zero (Corollary 9's premise).
Reads ``TASK-mechanism.mechanism.json``."""

from __future__ import annotations

from .inputs import per_task
from .style import HATCHES, OKABE_ITO, new_figure

NAME = "mechanism"
INPUTS = ("TASK-mechanism.mechanism.json",)
BARS = (
    ("trigger_pass_rate", "trigger coords: pass the mask"),
    ("other_pass_rate", "other coords: pass the mask"),
    ("trigger_benign_zero_share", "trigger coords: benign update exactly 0"),
)


def draw(results):
    found = per_task(results, "mechanism.mechanism.json")
    groups = [(task, r) for task, rows in found.items() for r in rows]
    fig, axes = new_figure(6.4, 3.0)
    ax = axes[0][0]
    width = 0.8 / len(BARS)
    for k, (key, label) in enumerate(BARS):
        xs = [i + (k - 1) * width for i in range(len(groups))]
        ax.bar(
            xs,
            [r[key] for _, r in groups],
            width,
            color=OKABE_ITO[(5, 1, 3)[k]],
            hatch=HATCHES[k],
            edgecolor="black",
            linewidth=0.4,
            label=label,
        )
    ax.set_xticks(range(len(groups)), [f"{t}\n{r['defence']} (tau {r['tau']:g})" for t, r in groups])
    ax.set_ylabel("share (mean over rounds, seeds)")
    ax.set_ylim(0, 1.35 * max(max(r[k] for _, r in groups) for k, _ in BARS))
    ax.legend(loc="upper right", frameon=False)
    ax.set_title("Does the mask single out the trigger's coordinates? Are benign updates there zero?")
    return fig
