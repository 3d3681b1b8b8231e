"""Doctest collection: the Flower modules need the optional extra; without it they are not
collected (tests/test_layers.py checks that they then say how to install it)."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("flwr") is None:
    collect_ignore += ["invariant_aggregator/flower.py", "deep_experiments/flower_app.py"]
