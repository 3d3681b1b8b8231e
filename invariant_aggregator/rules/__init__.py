"""Aggregation rules as small callable objects, one family per module.

``base`` holds the contract (:class:`AggregationRule`, the abstract :class:`StatefulRule`), the
registry (:func:`register` refuses a duplicate name) and :func:`make`; ``coordinate``,
``distance`` and ``stateful`` hold the rules. Importing this package registers every rule.
"""

from . import coordinate, distance, stateful  # noqa: F401  (registers the rules)
from .base import RULES, AggregationRule, StatefulRule, available_rules, make, register, unregister
from .coordinate import AndMask, FedAvg, Invariant, MeanRatioTrimmedMean, Median, SignSGD, TrimmedMean
from .distance import RFA, Bulyan, Krum, KrumTrimmedMean, MultiKrum, MultiKrumCosine
from .stateful import FoolsGold, SparseFed, WeakDP

__all__ = [
    "RULES",
    "AggregationRule",
    "StatefulRule",
    "available_rules",
    "make",
    "register",
    "unregister",
    "AndMask",
    "FedAvg",
    "Invariant",
    "MeanRatioTrimmedMean",
    "Median",
    "SignSGD",
    "TrimmedMean",
    "RFA",
    "Bulyan",
    "Krum",
    "KrumTrimmedMean",
    "MultiKrum",
    "MultiKrumCosine",
    "FoolsGold",
    "SparseFed",
    "WeakDP",
]
