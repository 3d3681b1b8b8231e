"""Corollary 9: the claimed sign consistency of the trigger coordinate against the exact one,
every regime, per part and reading. Parts (a) and (c) claim equality, part (b) a lower bound
(violated below the diagonal). Reads ``linear_theory.json``."""

from __future__ import annotations

from .inputs import theory_records, value
from .style import LINESTYLES, MARKERS, VERDICT_STYLE, VIOLATED_SHADE, new_figure

NAME = "corollary9"
INPUTS = ("linear_theory.json",)


def draw(results):
    records = [r for r in theory_records(results, "corollary_9") if "claimed_q" in r["evidence"]]
    fig, axes = new_figure(4.4, 5.2)
    ax = axes[0][0]
    ax.fill_between([0, 1], [0, 0], [0, 1], **VIOLATED_SHADE, label="below the claim (violates (b))")
    ax.plot([0, 1], [0, 1], color="black", linestyle=LINESTYLES[1], linewidth=0.8, label="exact = claimed")
    seen = set()
    readings = list(dict.fromkeys(r["reading"] for r in records))
    for r in records:
        colour, _ = VERDICT_STYLE[r["verdict"]]
        marker = MARKERS[readings.index(r["reading"]) % len(MARKERS)]
        label = f"{r['part'][:3]} {r['reading'][:28]}: {r['verdict']}"
        ax.scatter(
            value(r["evidence"]["claimed_q"]),
            value(r["evidence"]["q"]),
            s=22,
            color=colour,
            marker=marker,
            alpha=0.7,
            linewidths=0.5,
            label=None if label in seen else label,
        )
        seen.add(label)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("claimed sign consistency q (fraction of clients)")
    ax.set_ylabel("exact sign consistency q")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize=7)
    ax.set_title("Corollary 9: claimed vs exact q")
    return fig
