"""figures: every figure of the paper checks, one module per figure, each drawn from result files
only (no training or theory computation here). ``python -m figures RESULTS --out DIR`` draws all
those whose inputs are present, as PNG and PDF, in one shared style (:mod:`figures.style`).

Each module has ``NAME``, ``INPUTS`` (the result files it reads; ``TASK`` stands for each
tabular task) and ``draw(results) -> matplotlib.figure.Figure``, which raises
:class:`figures.inputs.InputMissing` when its inputs are absent.
"""

from __future__ import annotations

from pathlib import Path

from . import (
    ablation,
    attack_matrix,
    corollary9,
    failure_modes,
    mechanism,
    sensitivity,
    simulation_d1,
    table1,
    theorem8,
    theorem_bounds,
)
from .inputs import InputMissing
from .style import save

FIGURES = {
    m.NAME: m
    for m in (
        failure_modes,
        theorem_bounds,
        theorem8,
        corollary9,
        simulation_d1,
        table1,
        sensitivity,
        ablation,
        mechanism,
        attack_matrix,
    )
}


def draw_all(results, out, names=None) -> dict[str, list[Path] | str]:
    """Draw each figure (default: all) from ``results`` into ``out``: {name: [png, pdf]}, or
    {name: why it was not drawn} when its inputs are absent."""
    drawn: dict[str, list[Path] | str] = {}
    for name in names or FIGURES:
        try:
            fig = FIGURES[name].draw(Path(results))
        except InputMissing as exc:
            drawn[name] = str(exc)
            continue
        drawn[name] = save(fig, out, name)
    return drawn


__all__ = ["FIGURES", "InputMissing", "draw_all"]
