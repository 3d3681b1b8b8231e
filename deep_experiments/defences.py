"""Table 1's rows as run settings: which rule of the core aggregates, with which hyperparameters,
under which configuration.

A row is a registered aggregation rule, optionally with configuration overrides. Two rows of
the paper are not aggregators but settings of FedAvg, and are written as such:
``no_attack`` is FedAvg with ``federation.malicious_fraction = 0``, ``freeze_layers`` is FedAvg
with ``federation.freeze_to_last_layer = true``. Every other name is a rule of the core, with
its packaged defaults from ``[defences.NAME]``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import invariant_aggregator as ia

from .errors import ExperimentError


@dataclass(frozen=True)
class Setting:
    """A defence that is a configuration of a rule rather than a rule of its own."""

    rule: str
    overrides: dict = field(default_factory=dict)  # dotted configuration overrides


SETTINGS = {
    "no_attack": Setting("fedavg", {"federation.malicious_fraction": 0.0}),  # no malicious client
    "freeze_layers": Setting("fedavg", {"federation.freeze_to_last_layer": True}),  # last layer only
}

# Table 1's row labels, in the paper's order, and the defence that runs each
TABLE1_ROWS = {
    "FedAvg": "fedavg",
    "Krum": "krum",
    "Multi-Krum": "multi_krum",
    "Multi-Krum_C": "multi_krum_cosine",
    "Trimmed-Mean": "trimmed_mean",
    "Krum Trimmed-Mean": "krum_trimmed_mean",
    "Sign-SGD": "sign_sgd",
    "Weak-DP": "weak_dp",
    "Freezing Layers": "freeze_layers",
    "FoolsGold": "foolsgold",
    "RFA": "rfa",
    "SparseFed": "sparsefed",
    "No Attack": "no_attack",
    "Ours": "invariant",
    # not rows of the paper: the two halves of the method, for the ablation
    "Median": "median",
    "AND-mask alone": "and_mask",
}
# rows that do not apply to a kind of task, and why (shown in place of a number)
NOT_APPLICABLE = {
    ("freeze_layers", "tabular"): "the MLP is trained from scratch, so freezing all but its last layer leaves a "
    "random-feature model; its number would look like a defence failing",
}


def _excluded_by(key: str, value) -> tuple[str, ...]:
    """The packaged hyperparameters that a value given for one run replaces: tau_sum is the other
    scale of tau, and the authors' trim fixes the kept positions (no alpha)."""
    if key in ("tau", "tau_sum"):
        return ({"tau": "tau_sum", "tau_sum": "tau"}[key],)
    if key == "trim" and value == "authors":
        return ("alpha",)
    return ()


def defence_names() -> list[str]:
    return sorted(ia.available_rules()) + sorted(SETTINGS)


def check_defence_name(name: str) -> None:
    if name not in SETTINGS and name not in ia.available_rules():
        raise ExperimentError(f"unknown defence {name!r}; choose one of {', '.join(defence_names())}")


def setting_overrides(name: str) -> dict:
    """The configuration overrides that the defence ``name`` stands for (empty for a rule)."""
    check_defence_name(name)
    return dict(SETTINGS[name].overrides) if name in SETTINGS else {}


def expected_malicious_per_round(cfg) -> int:
    fed = cfg["federation"]
    return math.ceil(fed["malicious_fraction"] * fed["clients_per_round"] - 1e-9)


def resolve_defence(name: str, overrides: dict, cfg: dict, seed: int) -> dict:
    """{"name", "rule", "params"}: the rule's hyperparameters filled in (packaged defaults <-
    ``overrides``). ``cfg`` must already carry the defence's setting overrides. The rule is
    built and checked by :func:`build_rule`, once, by the run."""
    check_defence_name(name)
    rule = SETTINGS[name].rule if name in SETTINGS else name
    params = dict(cfg.get("defences", {}).get(name, {})) if name not in SETTINGS else {}
    for key, value in overrides.items():
        for replaced in _excluded_by(key, value):
            if replaced not in overrides:
                params.pop(replaced, None)
    params.update(overrides)
    accepted = inspect.signature(ia.RULES[rule].__init__).parameters
    if params.get("f") == "auto":
        params["f"] = expected_malicious_per_round(cfg)
    if "seed" in accepted and params.get("seed") is None:
        params["seed"] = seed  # weak_dp's noise follows the run's seed
    return {"name": name, "rule": rule, "params": params}


def build_rule(defence: dict) -> ia.AggregationRule:
    """The aggregation rule of a resolved defence; a bad hyperparameter is an ExperimentError."""
    try:
        return ia.make(defence["rule"], **defence["params"])
    except (ia.AggregatorError, TypeError) as exc:
        raise ExperimentError(f"defence {defence['name']!r} with {defence['params']}: {exc}") from None
