"""Appendix D.1: the trigger weight w_k over the rounds of the linear federated simulation, for
each rule, from a clean start (does the rule keep the adversary from growing w_k?) and from a
backdoored start (does it shrink w_k?); the mean over seeds. Reads ``linear_theory.json``."""

from __future__ import annotations

from .inputs import theory_records
from .style import LINESTYLES, MARKERS, OKABE_ITO, new_figure

NAME = "simulation_d1"
INPUTS = ("linear_theory.json",)


TAU_COLOURS = {0.2: OKABE_ITO[1], 0.4: OKABE_ITO[2], 0.6: OKABE_ITO[3], 0.8: OKABE_ITO[5]}


def _style(rule: str):
    """Colour by tau, line style and marker by rule family: FedAvg black and thick, the trimmed
    mean grey, the AND-mask dashed with triangles, the Invariant Aggregator solid with circles."""
    if rule == "fedavg":
        return OKABE_ITO[0], "-", None, 2.0
    if rule.startswith("trimmed_mean"):
        return "#777777", ":", "s", 1.4
    tau = float(rule.split("tau=")[1].split(",")[0].rstrip(")")) if "tau=" in rule else None
    colour = TAU_COLOURS.get(tau, OKABE_ITO[6])
    if rule.startswith("and_mask"):
        return colour, LINESTYLES[1], MARKERS[2], 1.1
    return colour, "-", MARKERS[0], 1.1


def draw(results):
    trajectories: dict[str, dict] = {"clean": {}, "backdoored": {}}
    for r in theory_records(results, "simulation_d1"):
        for start, rules in r["evidence"].get("trajectories", {}).items():
            trajectories.setdefault(start, {}).update(rules)
    fig, axes = new_figure(7.2, 3.0, 1, 2, sharey=True)
    for ax, start, title in (
        (axes[0][0], "clean", "clean start:\ncan the adversary grow w_k?"),
        (axes[0][1], "backdoored", "backdoored start:\nis w_k shrunk?"),
    ):
        for rule in sorted(trajectories[start]):
            t = trajectories[start][rule]
            colour, style, marker, width = _style(rule)
            ax.plot(
                t["rounds"],
                [float(w) for w in t["w_k"]],
                color=colour,
                linestyle=style,
                marker=marker,
                markersize=3,
                linewidth=width,
                label=rule,
            )
        ax.set_title(title)
        ax.set_xlabel("round")
    axes[0][0].set_ylabel("trigger weight w_k (mean over seeds)")
    axes[0][1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    fig.suptitle("Appendix D.1: the trigger weight under each rule")
    return fig
