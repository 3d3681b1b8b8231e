"""Table 1's rows as run settings: a registered aggregation rule, or one of the two rows that
are not aggregators (``no_attack``: FedAvg with no malicious client; ``freeze_layers``: FedAvg
with clients training only the last layer)."""

from __future__ import annotations

import inspect
import math

import invariant_aggregator as ia

from .errors import ExperimentError

SPECIAL = {"no_attack": "fedavg", "freeze_layers": "fedavg"}

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
}


def defence_names() -> list[str]:
    return sorted(ia.available_rules()) + sorted(SPECIAL)


def expected_malicious_per_round(cfg) -> int:
    fed = cfg["federation"]
    return math.ceil(fed["malicious_fraction"] * fed["clients_per_round"] - 1e-9)


def resolve_defence(name: str, overrides: dict, cfg: dict, seed: int) -> dict:
    """{"name", "rule", "params", "attack", "freeze"} with the rule's hyperparameters filled in
    (packaged defaults <- ``overrides``) and checked by constructing the rule once."""
    if name not in SPECIAL and name not in ia.available_rules():
        raise ExperimentError(f"unknown defence {name!r}; choose one of {', '.join(defence_names())}")
    rule = SPECIAL.get(name, name)
    params = dict(cfg.get("defences", {}).get(name, {})) if name not in SPECIAL else {}
    params.update(overrides)
    accepted = inspect.signature(ia.RULES[rule].__init__).parameters
    if params.get("f") == "auto":
        params["f"] = expected_malicious_per_round(cfg)
    if "seed" in accepted and params.get("seed") is None:
        params["seed"] = seed  # weak_dp's noise follows the run's seed
    try:
        ia.make(rule, **params)
    except (ia.AggregatorError, TypeError) as exc:
        raise ExperimentError(f"defence {name!r} with {params}: {exc}") from None
    return {
        "name": name,
        "rule": rule,
        "params": params,
        "attack": name != "no_attack",
        "freeze": name == "freeze_layers",
    }
