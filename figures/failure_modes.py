"""Fig. 1: the two failure modes (Section 4.1), measured: how often each rule gets a coordinate's
sign wrong (or zeroes it) when the malicious clients send outliers (mode 1) or inliers that flip
a weak benign sign (mode 2). Reads ``linear_theory.json``."""

from __future__ import annotations

from .inputs import theory_records
from .style import HATCHES, OKABE_ITO, new_figure

NAME = "failure_modes"
INPUTS = ("linear_theory.json",)
RULES = (
    ("fedavg", "FedAvg"),
    ("and_mask", "AND-mask"),
    ("trimmed_mean", "trimmed mean"),
    ("invariant", "Invariant Aggregator"),
)


def _regimes(records):
    seen = {}
    for r in records:
        p = r["evidence"]["parameters"]
        key = (p["N_malicious"], p["tau"], p["alpha"], p["law"], p["mean"])
        seen.setdefault(key, r["evidence"])
    return seen


def draw(results):
    fig, axes = new_figure(7.2, 3.2, 1, 2, sharey=True)
    for ax, mode, title in zip(
        axes[0],
        ("failure_mode_1", "failure_mode_2"),
        ("mode 1: malicious outliers", "mode 2: inliers flip a weak benign sign"),
        strict=True,
    ):
        regimes = _regimes(theory_records(results, mode))
        labels = [f"N'={k[0]}/{next(iter(regimes.values()))['parameters']['N']}\ntau={k[1]}" for k in regimes]
        width = 0.8 / len(RULES)
        for i, (rule, label) in enumerate(RULES):
            rates = [e["rates"][rule] for e in regimes.values()]
            wrong = [float(r["wrong_sign"]["value"]) for r in rates]
            errs = [
                [w - float(r["wrong_sign"]["low"]) for w, r in zip(wrong, rates, strict=True)],
                [float(r["wrong_sign"]["high"]) - w for w, r in zip(wrong, rates, strict=True)],
            ]
            xs = [j + (i - 1.5) * width for j in range(len(regimes))]
            ax.bar(
                xs,
                wrong,
                width,
                color=OKABE_ITO[i + 1 if i else 0],
                hatch=HATCHES[i],
                edgecolor="black",
                linewidth=0.4,
                label=label,
                yerr=errs,
                capsize=1.5,
                error_kw={"linewidth": 0.6},
            )
        ax.set_xticks(range(len(regimes)), labels)
        ax.set_title(title)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("regime (malicious clients / N, AND-mask threshold)")
    axes[0][0].set_ylabel("P(wrong sign) over Monte-Carlo trials")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False)
    fig.suptitle("Fig. 1, measured: bars at 0 are rules that never erred (error bars: Clopper-Pearson interval)")
    return fig
