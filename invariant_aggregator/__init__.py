"""invariant_aggregator: the Invariant Aggregator and the Table 1 defences, one implementation.

>>> import numpy as np, invariant_aggregator as ia
>>> rule = ia.make("invariant", tau=0.6, alpha=0.1)
>>> rule(np.random.default_rng(0).normal(size=(20, 1000)).astype(np.float32)).shape
(1000,)

Rules: :func:`make`, :func:`available_rules` and :func:`register` (one family per module in
:mod:`invariant_aggregator.rules`); the mathematics as pure functions in
:mod:`invariant_aggregator.functional`; model <-> vector helpers in
:mod:`invariant_aggregator.params`; atomic result files. The core holds no paper content and
never imports ``linear_theory`` or ``deep_experiments``.
"""

from . import functional
from ._io import write_atomic, write_json_atomic, write_text_atomic
from .errors import AggregatorError
from .params import ParameterLayout, last_layer_names
from .rules import RULES, AggregationRule, StatefulRule, available_rules, make, register, unregister

__version__ = "0.1.0"

__all__ = [
    "AggregatorError",
    "AggregationRule",
    "StatefulRule",
    "ParameterLayout",
    "RULES",
    "available_rules",
    "functional",
    "last_layer_names",
    "make",
    "register",
    "unregister",
    "write_atomic",
    "write_json_atomic",
    "write_text_atomic",
    "__version__",
]
