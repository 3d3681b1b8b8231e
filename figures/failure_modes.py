"""Fig. 1: the two failure modes (Section 4.1), measured: how often each rule gets a coordinate's
sign wrong (or zeroes it) when the malicious clients send outliers (mode 1) or inliers that flip
a weak benign sign (mode 2). Reads ``linear_theory.json``."""

from __future__ import annotations

from .inputs import theory_records
from .style import MARKERS, OKABE_ITO, new_figure

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
    fig, axes = new_figure(7.2, 3.4, 1, 2, sharey=True)
    for ax, mode, title in zip(
        axes[0],
        ("failure_mode_1", "failure_mode_2"),
        ("mode 1: malicious outliers", "mode 2: inliers flip a weak benign sign"),
        strict=True,
    ):
        regimes = list(_regimes(theory_records(results, mode)).values())
        n = len(regimes)
        # one thin grey line per regime across the four rules (the claim compares rules within a
        # regime), each rule's dots in its colour and marker; a small offset per regime keeps the
        # dots apart; Clopper-Pearson error bars while they stay legible (up to 12 regimes)
        offsets = [(j / (n - 1) - 0.5) * 0.36 if n > 1 else 0.0 for j in range(n)]
        for j, e in enumerate(regimes):
            ys = [float(e["rates"][rule]["wrong_sign"]["value"]) for rule, _ in RULES]
            ax.plot([i + offsets[j] for i in range(len(RULES))], ys, color="#999999", linewidth=0.5, zorder=1)
        for i, (rule, label) in enumerate(RULES):
            rates = [e["rates"][rule]["wrong_sign"] for e in regimes]
            ys = [float(r["value"]) for r in rates]
            errs = None
            if n <= 12:
                errs = [
                    [y - float(r["low"]) for y, r in zip(ys, rates, strict=True)],
                    [float(r["high"]) - y for y, r in zip(ys, rates, strict=True)],
                ]
            ax.errorbar(
                [i + o for o in offsets],
                ys,
                yerr=errs,
                fmt=MARKERS[i],
                color=OKABE_ITO[(0, 5, 3, 6)[i]],
                markersize=4,
                elinewidth=0.7,
                capsize=1.5,
                linestyle="none",
                label=label,
                zorder=2,
            )
        ax.set_xticks(range(len(RULES)), [label.replace(" ", "\n", 1) for _, label in RULES])
        ax.set_title(f"{title}\n({n} regime(s): laws, N, N', tau, alpha)")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("aggregation rule")
    axes[0][0].set_ylabel("P(wrong sign), Monte Carlo")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False)
    fig.suptitle("Fig. 1, measured: each grey line is one regime (error bars: Clopper-Pearson, up to 12 regimes)")
    return fig
