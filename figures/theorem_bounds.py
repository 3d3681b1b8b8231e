"""Theorems 4 and 5: each regime's claimed probability bound against the measured probability
(exact, or Monte Carlo with its interval). Theorem 4 claims a lower bound (violated below the
diagonal), Theorem 5 an upper bound (violated above it). Reads ``linear_theory.json``."""

from __future__ import annotations

import math

from .inputs import theory_records, value
from .style import VERDICT_STYLE, VIOLATED_SHADE, new_figure

NAME = "theorem_bounds"
INPUTS = ("linear_theory.json",)
LOW, HIGH = 1e-4, 1e2  # the plotted range; claimed bounds outside it are drawn at its edge


def _clip(x: float) -> float:
    return min(max(x, LOW), HIGH)


def draw(results):
    fig, axes = new_figure(7.6, 4.0, 1, 2)
    for ax, claim, title, violated_above in (
        (axes[0][0], "theorem_4", "Theorem 4 (trimmed mean): P >= claimed", False),
        (axes[0][1], "theorem_5", "Theorem 5 (AND-mask): P <= claimed", True),
    ):
        diag = [LOW, HIGH]
        if violated_above:
            ax.fill_between(diag, diag, [HIGH, HIGH], **VIOLATED_SHADE, label="violated region")
        else:
            ax.fill_between(diag, [LOW, LOW], diag, **VIOLATED_SHADE, label="violated region")
        ax.plot(diag, diag, color="black", linewidth=0.8, linestyle="--", label="measured = claimed")
        by_verdict: dict[str, list] = {}
        for r in theory_records(results, claim):
            ev = r["evidence"]
            if "claimed_probability" not in ev or "measured_probability" not in ev:
                continue
            claimed, measured = value(ev["claimed_probability"]), value(ev["measured_probability"]["value"])
            if math.isnan(claimed):
                continue
            by_verdict.setdefault(r["verdict"], []).append((_clip(claimed), _clip(measured)))
        for verdict, points in by_verdict.items():
            colour, marker = VERDICT_STYLE[verdict]
            ax.scatter(
                *zip(*points, strict=True),
                s=12,
                color=colour,
                marker=marker,
                alpha=0.6,
                label=f"{verdict} ({len(points)})",
                linewidths=0.5,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(LOW / 2, HIGH * 2)
        ax.set_ylim(LOW / 2, HIGH * 2)
        ax.set_xlabel(f"claimed bound (beyond [{LOW:g}, {HIGH:g}]: at the edge)")
        ax.set_ylabel("measured probability")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=3, frameon=False, fontsize=7)
    fig.suptitle("Claimed bound vs measured probability, every regime and reading (shaded: the claim is violated)")
    return fig
