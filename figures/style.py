"""One style for every figure: the Okabe-Ito colours (distinguishable by colour-blind readers),
each series also told apart by marker, line style or hatch (readable in greyscale), labelled axes
with units, and both PNG and PDF. Figures are built on :class:`matplotlib.figure.Figure`
directly, so drawing never touches pyplot's global state or the caller's backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "++", "--")
SEQUENTIAL = "cividis"  # perceptually uniform, colour-blind safe, monotone in greyscale

VERDICT_STYLE = {  # verdict -> (colour, marker)
    "holds": (OKABE_ITO[3], "o"),
    "violated": (OKABE_ITO[6], "X"),
    "vacuous": (OKABE_ITO[2], "^"),
    "inapplicable": (OKABE_ITO[7], "s"),
    "ill-posed": (OKABE_ITO[0], "D"),
}
VIOLATED_SHADE = {"color": OKABE_ITO[6], "alpha": 0.12, "hatch": "////", "linewidth": 0}

RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # editable text in the PDF
    "hatch.linewidth": 0.6,
}


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kwargs):
    """A Figure and its axes, in the shared style (the style applies to this figure only)."""
    with mpl.rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def save(fig: Figure, out, name: str) -> list[Path]:
    """``out/name.png`` (150 dpi) and ``out/name.pdf``; returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    with mpl.rc_context(RC):
        for path in paths:
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, dpi=150, format=path.suffix[1:])
            tmp.replace(path)  # a reader never sees half a file
    return paths
