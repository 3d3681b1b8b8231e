"""Fig. 1: each treatment alone fails on one construction; their composition fails on neither."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import invariant_aggregator as ia
from linear_theory.failure_modes import FAILURE_MODE_1, FAILURE_MODE_2, evaluate


def verdicts(mode):
    return {r["rule"]: r["correct_sign"] for r in evaluate(mode)}


def test_failure_mode_1_and_mask_fails_invariant_succeeds():
    v = verdicts(FAILURE_MODE_1)
    assert v == {"fedavg": False, "and_mask": False, "trimmed_mean": True, "invariant": True}


def test_failure_mode_2_trimmed_mean_fails_invariant_succeeds():
    v = verdicts(FAILURE_MODE_2)
    assert v == {"fedavg": False, "and_mask": True, "trimmed_mean": False, "invariant": True}


@given(
    benign=st.lists(st.floats(0.5, 2.0), min_size=8, max_size=14),
    outlier=st.floats(-1e6, -100.0),
)
def test_failure_mode_1_family(benign, outlier):
    # N' = 2 outliers against same-signed benign values: mean flips, consistency stays >= 0.6
    n = len(benign) + 2
    x = np.array(benign + [outlier, outlier])[:, None]
    assert (len(benign) - 2) / n >= 0.6
    assert ia.make("and_mask", tau=0.6)(x)[0] < 0
    assert ia.make("invariant", tau=0.6, alpha=0.2)(x)[0] > 0


@given(
    half=st.lists(st.floats(0.05, 2.0), min_size=4, max_size=7),
    attack=st.floats(0.01, 0.04),
)
def test_failure_mode_2_family(half, attack):
    # benign values in +/- pairs (mean 0); two small attack values inside the benign range
    benign = [v for h in half for v in (h, -h)]
    x = np.array(benign + [attack, attack])[:, None]
    tm = ia.make("trimmed_mean", alpha=0.1)(x)[0]
    assert tm > 0  # the trimmed mean takes the attacker's sign
    assert ia.make("invariant", tau=0.6, alpha=0.1)(x)[0] == 0.0  # masked: consistency 2/N < 0.6
