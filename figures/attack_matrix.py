"""The attack x defence matrix: per tabular task, Acc_B (the backdoors' aim) and Acc_M (the
untargeted attacks' aim) of every Table 1 defence (rows) under every attack (columns; the first,
"no attack", is each defence's own reference), each cell the mean over seeds of the last 10 % of
rounds, written in the cell. Reads ``TASK-attacks.attacks.json``."""

from __future__ import annotations

import numpy as np

from .inputs import per_task
from .style import SEQUENTIAL, new_figure

NAME = "attack_matrix"
INPUTS = ("TASK-attacks.attacks.json",)
# (key, title, colour range): Acc_M of these binary tasks lives in [0.5, 1]; a common [0, 1] scale
# would hide every difference in it
PANELS = (
    ("acc_b_last10", "Acc_B (backdoor accuracy; lower is better)", (0.0, 1.0)),
    ("acc_m_last10", "Acc_M (main accuracy; higher is better)", (0.5, 1.0)),
)


def draw(results):
    found = per_task(results, "attacks.attacks.json")
    all_attacks = list(dict.fromkeys(r["attack"] for rows in found.values() for r in rows))
    fig, axes = new_figure(1.05 * len(all_attacks) + 2.6, 3.4 * len(found), nrows=len(found), ncols=len(PANELS))
    images = {}
    for i, (task, rows) in enumerate(found.items()):
        attacks = list(dict.fromkeys(r["attack"] for r in rows))
        labels = {r["attack"]: r["attack_label"] for r in rows}
        defences = list(dict.fromkeys(r["defence"] for r in rows))
        cell = {(r["defence"], r["attack"]): r for r in rows}
        seeds = max(len(r["seeds"]) for r in rows)
        for j, (key, title, (low, high)) in enumerate(PANELS):
            ax = axes[i][j]
            grid = np.array([[cell[(d, a)][key] if (d, a) in cell else np.nan for a in attacks] for d in defences])
            images[j] = ax.imshow(grid, cmap=SEQUENTIAL, vmin=low, vmax=high, aspect="auto")
            for (y, x), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(
                        x,
                        y,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if v < (low + high) / 2 else "black",
                    )
            ax.set_xticks(range(len(attacks)), [labels[a] for a in attacks], rotation=40, ha="right")
            ax.set_yticks(range(len(defences)), defences)
            ax.grid(False)
            ax.set_title(f"{task}: {title}, {seeds} seed(s)")
    for j, image in images.items():
        fig.colorbar(image, ax=axes[:, j], shrink=0.6, label=("Acc_B", "Acc_M")[j])
    return fig
