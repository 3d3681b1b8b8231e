"""Table 1 as a figure: Acc_M and Acc_B of every defence, the paper's numbers (top row, from
``paper_table1.json``, which ``paper_checks`` writes beside the results) and ours (bottom row:
each tabular task in the fair and the paper-literal setting, mean +- SE over seeds)."""

from __future__ import annotations

from .inputs import InputMissing, read_json, tables
from .style import OKABE_ITO, new_figure

NAME = "table1"
INPUTS = ("paper_table1.json", "TASK-small.table.json", "TASK-small-literal.table.json")
ORDER = (
    "FedAvg",
    "Krum",
    "Multi-Krum",
    "Multi-Krum_C",
    "Trimmed-Mean",
    "Krum Trimmed-Mean",
    "Sign-SGD",
    "Weak-DP",
    "Freezing Layers",
    "FoolsGold",
    "RFA",
    "SparseFed",
    "No Attack",
    "Ours",
    "Median",
    "AND-mask alone",
)
PAPER_TASKS = (("cifar10", "CIFAR-10"), ("twitter", "Twitter"), ("phishing", "phishing"))


def _panel(ax, title, cells):
    """cells: {row: (acc_m, se_m, acc_b, se_b)}."""
    ys = {r: i for i, r in enumerate(ORDER)}
    for r in [r for r, c in cells.items() if c == "n/a"]:
        ax.text(0.5, ys[r], "not applicable", ha="center", va="center", fontsize=7, style="italic")
    cells = {r: c for r, c in cells.items() if c != "n/a"}
    rows = [r for r in ORDER if r in cells] + sorted(set(cells) - set(ORDER))
    for k, (name, colour, marker, offset) in enumerate(
        (("Acc_M", OKABE_ITO[5], "o", -0.15), ("Acc_B", OKABE_ITO[6], "s", 0.15))
    ):
        xs = [cells[r][2 * k] for r in rows]
        errs = [cells[r][2 * k + 1] for r in rows]
        ax.errorbar(
            xs,
            [ys.get(r, len(ORDER)) + offset for r in rows],
            xerr=errs,
            fmt=marker,
            color=colour,
            markersize=4,
            markerfacecolor=colour if k else "white",
            elinewidth=0.8,
            capsize=1.5,
            label=name,
        )
    ax.set_title(title)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("accuracy (fraction)")


def draw(results):
    panels = []
    try:
        paper = read_json(results, "paper_table1.json")
        for task, label in PAPER_TASKS:
            cells = {
                c["method"]: (c["acc_m"], c["spread_m"], c["acc_b"], c["spread_b"]) for c in paper if c["task"] == task
            }
            listed = {c["method"] for c in paper}
            cells |= {m: "n/a" for m in listed - set(cells)}  # "N\A" in the paper
            panels.append((f"paper\n{label}", cells))
    except InputMissing:
        pass
    ours = []
    for stage, label in (("small", "fair"), ("small-literal", "paper-literal")):
        try:
            found = tables(results, stage)
        except InputMissing:
            continue
        for task, rows in found.items():
            cells = {
                r["row"]: (r["acc_m"], r.get("acc_m_se", 0.0), r["acc_b"], r.get("acc_b_se", 0.0))
                for r in rows
                if r.get("seeds")
            }
            cells = {k: tuple(0.0 if v != v else v for v in c) for k, c in cells.items()}
            cells |= {r["row"]: "n/a" for r in rows if r.get("not_applicable")}
            ours.append((f"ours\n{task}, {label}", cells))
    if not ours and not panels:
        raise InputMissing(f"neither paper_table1.json nor any Table 1 table in {results}")
    ncols = max(len(panels), len(ours), 1)
    nrows = (1 if panels else 0) + (1 if ours else 0)
    fig, axes = new_figure(2.0 * ncols + 1.4, 3.6 * nrows, nrows, ncols, sharey=True)
    for row_axes, row_panels in zip(axes, [p for p in (panels, ours) if p], strict=True):
        for ax, (title, cells) in zip(row_axes, row_panels, strict=False):
            _panel(ax, title, cells)
        for ax in row_axes[len(row_panels) :]:
            ax.set_visible(False)
        row_axes[0].set_yticks(range(len(ORDER)), ORDER)
        row_axes[0].invert_yaxis() if not row_axes[0].yaxis_inverted() else None
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle("Table 1: the paper's numbers and ours (error bars: the paper's printed spread; our SE over seeds)")
    return fig
