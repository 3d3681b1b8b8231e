"""Every numeric setting is checked against its range before any data is loaded: one error that
names the setting, the range and the value (before, many ran and reported numbers, or failed
with IndexError / ZeroDivisionError after the data was loaded)."""

import math

import pytest

from deep_experiments import ExperimentError, load_config, run_config
from deep_experiments.config import RANGES, packaged

BAD = [
    ("phishing", "federation.rounds", 0),
    ("phishing", "federation.eval_every", 0),
    ("phishing", "runtime.checkpoint_every", 0),
    ("phishing", "federation.malicious_fraction", 1.5),
    ("phishing", "federation.n_clients", 0),
    ("phishing", "train.batch_size", 0),
    ("phishing", "train.lr", -1.0),
    ("phishing", "train.local_epochs", -1),
    ("phishing", "model.hidden", [0]),
    ("phishing", "model.hidden", [64, -3]),
    ("phishing", "federation.server_lr", math.nan),
    ("phishing", "train.lr", math.inf),
    ("phishing", "attack.backdoor_per_batch", -1),
    ("phishing", "data.samples_per_client", 0),
    ("phishing", "data.n_test", 0),
    ("phishing", "data.test_fraction", 0.0),
    ("spambase", "data.test_fraction", 1.0),
    ("spambase", "data.dirichlet_alpha", -0.5),
    ("twitter", "model.hidden", 0),
    ("cifar10", "data.max_train", -1),
]


@pytest.mark.parametrize("task, path, value", BAD)
def test_out_of_range_settings_are_named(task, path, value):
    with pytest.raises(ExperimentError, match=rf"setting '{path}' must lie in .*got {value!r}".replace("[", r"\[")):
        load_config(task, overrides={path: value})


@pytest.mark.parametrize(
    "task, overrides, message",
    [
        ("phishing", {"attack.target_label": 5}, "not a class of the phishing task"),
        ("cifar10", {"attack.target_label": 10}, r"labels 0\.\.9"),
        ("phishing", {"federation.clients_per_round": 30, "federation.n_clients": 20}, "exceeds federation.n_clients"),
        ("phishing", {"data.trigger_feature": 46}, "not one of the data.n_features = 45 columns"),
    ],
)
def test_inconsistent_settings_are_named(task, overrides, message):
    with pytest.raises(ExperimentError, match=message):
        load_config(task, overrides=overrides)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True])
def test_seeds_outside_numpy_range(seed):
    with pytest.raises(ExperimentError, match="seed must be an integer"):
        run_config(load_config("phishing"), "fedavg", seed=seed)


@pytest.mark.parametrize("task", ["phishing", "spambase", "cifar10", "twitter"])
@pytest.mark.parametrize("scale", ["small", "paper"])
def test_every_packaged_configuration_is_in_range(task, scale):
    load_config(task, scale)  # raises if a packaged value lies outside its own range


def test_every_range_names_a_packaged_setting():
    known = set()
    for task in ("phishing", "spambase", "cifar10", "twitter"):
        cfg = packaged(task)
        known |= {f"{s}.{k}" for s, table in cfg.items() if isinstance(table, dict) for k in table}
    assert set(RANGES) <= known, set(RANGES) - known
