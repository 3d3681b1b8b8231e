"""Theorem 8: for each regime, the exact expected gradient on w_k multiplied by the sign the
theorem claims (positive: the claim's sign is right; negative: violated), per part and reading.
Reads ``linear_theory.json``."""

from __future__ import annotations

from .inputs import theory_records, value
from .style import VERDICT_STYLE, VIOLATED_SHADE, new_figure

NAME = "theorem8"
INPUTS = ("linear_theory.json",)


def draw(results):
    records = [r for r in theory_records(results, "theorem_8") if "exact_expected_gradient" in r["evidence"]]
    groups = list(dict.fromkeys((r["part"], r["reading"]) for r in records))
    fig, axes = new_figure(7.6, 1.6 + 0.32 * len(groups))
    ax = axes[0][0]
    ax.axvspan(-1e3, 0, **VIOLATED_SHADE)
    seen = set()
    for i, (part, reading) in enumerate(groups):
        # the quantity each reading compares with the claimed sign: the gradient, or its negative
        flip = -1.0 if reading.startswith("descent") else 1.0
        for r in (r for r in records if (r["part"], r["reading"]) == (part, reading)):
            ev = r["evidence"]
            agreement = [flip * value(g) * value(ev["claimed_sign"]) for g in ev["exact_expected_gradient"]]
            colour, marker = VERDICT_STYLE[r["verdict"]]
            ax.scatter(
                agreement,
                [i] * len(agreement),
                s=14,
                color=colour,
                marker=marker,
                alpha=0.6,
                linewidths=0.5,
                label=None if r["verdict"] in seen else r["verdict"],
            )
            seen.add(r["verdict"])
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(-10, 10)
    ax.set_xticks([-1, -0.01, 0, 0.01, 1], ["-1", "-0.01", "0", "0.01", "1"])
    ax.set_yticks(range(len(groups)), [f"{p.split(':')[0]} | {rd}" for p, rd in groups])
    ax.invert_yaxis()
    ax.set_xlabel("claimed sign x the reading's quantity (E[gradient] or -E[gradient]; symlog; < 0: claim wrong)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(
        "Theorem 8: the sign of the expected gradient, every regime\n"
        "(i): mu_k != 0, w_k mu_k <= 0, claimed sign(mu_k); (ii): mu_k = 0, claimed sign(w_k)"
    )
    return fig
