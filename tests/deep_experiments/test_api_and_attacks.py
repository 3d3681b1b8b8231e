"""The programmatic entry points (a run is a function call), Table 1's settings rows as
configuration, and the attack objects behind their one interface."""

import json

import pytest
import torch

import deep_experiments as de
import invariant_aggregator as ia
from deep_experiments import attacks, results
from deep_experiments.config import parse_assignment
from deep_experiments.errors import ExperimentError

from .helpers import TINY_PHISHING, config

TINY = dict(parse_assignment(s, "--set") for s in TINY_PHISHING)  # the same settings as a mapping


def test_run_is_a_function_call_returning_what_it_writes(tmp_path):
    cfg = de.load_config("phishing", overrides=TINY)
    summary = de.run(cfg, "invariant", seed=1, out=tmp_path, params={"tau": 0.4}, progress=False)
    assert summary == json.loads(results.run_file(tmp_path, results.SUMMARY).read_text())
    assert summary["seed"] == 1 and summary["config"]["defence"]["params"] == {"tau": 0.4, "alpha": 0.2}
    assert cfg["federation"]["rounds"] == 4 and "defence" not in cfg  # the caller's configuration is not changed


def test_load_config_checks_overrides_like_the_command_line():
    with pytest.raises(ExperimentError, match="unknown setting 'federation.n_client'"):
        de.load_config("phishing", overrides={"federation.n_client": 3})
    with pytest.raises(ExperimentError, match="'train.lr' must be a float"):
        de.load_config("phishing", overrides={"train.lr": "fast"})
    assert de.load_config("spambase", "paper")["federation"]["eval_every"] == 1


def test_data_location_maps_to_each_tasks_setting():
    assert de.data_overrides("cifar10", "/d") == {"data.root": "/d"}
    assert de.data_overrides("spambase", "/s.csv") == {"data.path": "/s.csv"}
    assert de.data_overrides("phishing", "/p.csv") == {"data.source": "table", "data.path": "/p.csv"}
    assert de.data_overrides("twitter", None, download=True) == {"data.download": True}
    assert de.data_overrides("spambase", None, download=True) == {"data.download": True}
    with pytest.raises(ExperimentError, match="nothing to download"):
        de.data_overrides("phishing", None, download=True)


def test_settings_rows_are_configuration_not_defence_flags():
    no_attack, freeze = config(defence="no_attack", sets=TINY_PHISHING), config(defence="freeze_layers")
    assert no_attack["federation"]["malicious_fraction"] == 0.0 and no_attack["defence"]["rule"] == "fedavg"
    assert freeze["federation"]["freeze_to_last_layer"] is True and freeze["defence"]["rule"] == "fedavg"
    assert set(no_attack["defence"]) == {"name", "rule", "params"}


def test_each_rule_is_built_once_per_run(tmp_path, monkeypatch):
    built = []
    real = ia.make
    monkeypatch.setattr(ia, "make", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    de.run(de.load_config("phishing", overrides=TINY), "weak_dp", out=tmp_path, progress=False)
    assert built == ["weak_dp"]


def test_dry_run_leaves_a_stateful_rule_as_built(tmp_path):
    # the dry run aggregates random updates; the run's rule must then equal a freshly built one
    run = de.Run(config(defence="weak_dp", sets=TINY_PHISHING), tmp_path)
    fresh = de.build_rule(run.defence)
    x = torch.randn(5, 7)
    torch.testing.assert_close(run.rule(x), fresh(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- attacks
def test_build_attack_layers_the_evasions_the_settings_turn_on():
    cfg = de.load_config("phishing")["attack"]
    plain = attacks.build_attack(cfg)
    assert isinstance(plain.poisoning, attacks.EdgeCase) and plain.evasions == []
    both = attacks.build_attack(cfg | {"pgd_eps": 0.5, "scale": 3.0})
    assert [type(e) for e in both.evasions] == [attacks.PGDProjection, attacks.ModelReplacement]
    ctx = attacks.ClientContext(1, 0, None, torch.zeros(2))
    torch.testing.assert_close(both.shape_update(torch.tensor([1.0, -2.0]), ctx), torch.tensor([3.0, -6.0]))
    with pytest.raises(ExperimentError, match="attack.kind = 'nope'"):
        attacks.build_attack(cfg | {"kind": "nope"})


def test_register_attack_refuses_a_taken_kind():
    class Again(attacks.Poisoning):
        kind = "edge_case"

    with pytest.raises(ExperimentError, match="already registered"):
        attacks.register_attack(Again)


def test_image_only_attack_on_a_tabular_task_fails_before_any_data(tmp_path, monkeypatch):
    def no_data(*a, **k):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(de.tasks.tabular, "load_spambase", no_data)
    with pytest.raises(ExperimentError, match="'pixel_pattern' is for image tasks; spambase has 'edge_case'"):
        de.Run(config("spambase", sets=["attack.kind='pixel_pattern'"]), tmp_path)


def test_a_new_poisoning_is_one_class_and_one_config_entry(tmp_path):
    @attacks.register_attack
    class ClassFlip(attacks.Poisoning):
        kind = "test_class_flip"
        modalities = ("tabular",)

        def backdoor_inputs(self, source):
            (x, y), (x_test, y_test) = source.clean_train, source.clean_test
            return x[y == 1], x_test[y_test == 1]

    try:
        run = de.Run(config(sets=[*TINY_PHISHING, "attack.kind='test_class_flip'"]), tmp_path)
        positives = run.task.train.inputs[run.task.train.labels == 1]
        assert len(run.task.backdoor_train) == len(positives)
        assert torch.equal(run.task.backdoor_train.inputs, positives)
        assert bool((run.task.backdoor_train.labels == run.task.target).all())
        assert run.run()["rounds"] == 4
    finally:
        del attacks.POISONINGS["test_class_flip"]


def test_observe_sees_each_round_before_training(tmp_path):
    seen = []

    class Watcher(attacks.Attack):
        def observe(self, view):
            seen.append((view.round, view.clients, view.malicious, view.global_vector.clone()))

    run = de.Run(config(sets=[*TINY_PHISHING, "federation.malicious_fraction=0.4"]), tmp_path)
    run.attack.evasions.append(Watcher())
    before = run.layout.flatten(run.model)
    run.step()
    run.step()
    assert [s[0] for s in seen] == [1, 2]
    for r in (1, 2):
        clients = tuple(run.sample_clients(r))
        assert seen[r - 1][1] == clients and seen[r - 1][2] == tuple(c for c in clients if c in run.malicious)
    assert any(seen[r][2] for r in (0, 1))  # the view names attackers (4 of 10 clients are malicious)
    assert torch.equal(seen[0][3], before) and not torch.equal(seen[1][3], before)
