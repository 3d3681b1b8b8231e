"""The tau x alpha sensitivity of the Invariant Aggregator (Appendix D's announced study, at small
scale): heatmaps of Acc_M and Acc_B under attack, per task. Reads ``TASK-sensitivity.table.json``."""

from __future__ import annotations

import numpy as np

from deep_experiments.results import row_params

from .inputs import tables
from .style import SEQUENTIAL, new_figure

NAME = "sensitivity"
INPUTS = ("TASK-sensitivity.table.json",)


def draw(results):
    found = tables(results, "sensitivity")
    fig, axes = new_figure(6.4, 2.7 * len(found), len(found), 2)
    for row, (task, rows) in zip(axes, found.items(), strict=True):
        cells = {
            (p["tau"], p["alpha"]): r for r in rows if r["defence"] == "invariant" and "alpha" in (p := row_params(r))
        }
        taus = sorted({t for t, _ in cells})
        alphas = sorted({a for _, a in cells})
        for ax, metric, label in ((row[0], "acc_m", "Acc_M"), (row[1], "acc_b", "Acc_B")):
            grid = np.full((len(taus), len(alphas)), np.nan)
            for (t, a), r in cells.items():
                grid[taus.index(t), alphas.index(a)] = r[metric]
            image = ax.imshow(grid, cmap=SEQUENTIAL, vmin=0, vmax=1, origin="lower", aspect="auto")
            for i in range(len(taus)):
                for j in range(len(alphas)):
                    if not np.isnan(grid[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{grid[i, j]:.2f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if grid[i, j] < 0.55 else "black",
                        )
            ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
            ax.set_yticks(range(len(taus)), [f"{t:g}" for t in taus])
            ax.set_xlabel("alpha (trimmed fraction per side)")
            ax.set_ylabel("tau (sign-consistency threshold)")
            ax.set_title(f"{task}: {label} under attack")
            ax.grid(False)
            fig.colorbar(image, ax=ax, label=f"{label} (fraction)", shrink=0.85)
    fig.suptitle("tau x alpha sensitivity of the Invariant Aggregator (last round, mean over seeds)")
    return fig
