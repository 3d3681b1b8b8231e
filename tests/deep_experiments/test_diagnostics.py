"""The mechanism diagnostic: statistics checked against brute force from their definitions."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deep_experiments as de
import invariant_aggregator as ia
from deep_experiments import diagnostics
from deep_experiments.models import MLP

from .helpers import TINY_PHISHING


def test_trigger_coordinates_are_the_first_layer_weights_of_the_column():
    model = MLP(7, (5, 3))
    layout = ia.ParameterLayout.of(model)
    idx = diagnostics.trigger_coordinates(model, layout, 4, 7)
    flat = layout.flatten(model)
    assert torch.equal(flat[idx], model.net[0].weight[:, 4].detach())
    assert len(idx) == 5


@given(
    signs=hnp.arrays(np.int8, st.tuples(st.integers(2, 9), st.integers(2, 12)), elements=st.sampled_from([-1, 0, 1])),
    data=st.data(),
)
def test_sign_statistics_from_the_definition(signs, data):
    n, d = signs.shape
    bad = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    trigger = np.array(sorted(data.draw(st.sets(st.integers(0, d - 1), min_size=1, max_size=d - 1))))
    tau = data.draw(st.sampled_from([0.2, 0.5, 0.6]))
    magnitudes = np.random.default_rng(0).uniform(0.1, 3, size=signs.shape)
    got = diagnostics.sign_statistics(
        torch.as_tensor(signs * magnitudes), torch.as_tensor(bad), torch.as_tensor(trigger), tau
    )
    is_trigger = np.isin(np.arange(d), trigger)

    def consistency(rows, cols):
        if rows.sum() == 0:
            return math.nan
        return float(np.mean([abs(sum(signs[i, k] for i in range(n) if rows[i])) / rows.sum() for k in cols]))

    need = math.ceil(round(tau * n, 9))
    passes = np.array([abs(signs[:, k].sum()) >= need for k in range(d)])
    assert got["kept_fraction"] == pytest.approx(passes.mean())
    for part, cols in (("trigger", np.flatnonzero(is_trigger)), ("other", np.flatnonzero(~is_trigger))):
        g = got[part]
        assert g["consistency"] == pytest.approx(consistency(np.ones(n, bool), cols))
        for key, rows in (("consistency_benign", ~bad), ("consistency_malicious", bad)):
            want = consistency(rows, cols)
            assert (math.isnan(g[key]) and math.isnan(want)) or g[key] == pytest.approx(want)
        assert g["pass_rate"] == pytest.approx(passes[cols].mean())
        if (~bad).any():
            assert g["benign_zero_share"] == pytest.approx((signs[~bad][:, cols] == 0).mean())


def test_diagnostics_leave_the_results_alone_and_reach_the_records(tmp_path):
    plain = de.run(de.load_config("phishing", overrides=TINY_PHISHING), "invariant", out=tmp_path / "a", progress=False)
    cfg = de.load_config("phishing", overrides=[*TINY_PHISHING, "runtime.diagnostics=true"])
    with_diag = de.run(cfg, "invariant", out=tmp_path / "b", progress=False)
    assert (plain["acc_m"], plain["acc_b"]) == (with_diag["acc_m"], with_diag["acc_b"])
    records = json.loads((tmp_path / "b" / "records.json").read_text())
    assert all("diagnostics" in r for r in records) and "diagnostics" not in plain
    assert with_diag["diagnostics"]["rounds"] == len(records) and with_diag["diagnostics"]["tau"] == 0.6
    assert with_diag["diagnostics"]["kept_fraction"] == pytest.approx(
        np.mean([r["diagnostics"]["kept_fraction"] for r in records])
    )


def test_diagnostics_need_a_trigger_feature(data_root, tmp_path):
    from .test_pipelines import _edge  # the fixture edge-case files

    cfg = de.load_config(
        "cifar10",
        overrides=[*TINY_PHISHING[:4], "model.width=4", "runtime.diagnostics=true", f"data.root='{data_root}'",
                   *_edge(data_root)],
    )  # fmt: skip
    with pytest.raises(de.ExperimentError, match="only the tabular tasks"):
        de.Run(de.run_config(cfg, "fedavg"), tmp_path)
