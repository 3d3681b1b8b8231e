"""The checking machinery: judges, records, summaries."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from linear_theory import theorem4, theorem5
from linear_theory.laws import make_law
from linear_theory.records import (
    Estimate,
    Record,
    judge_at_least,
    judge_difference_at_most_zero,
    judge_difference_positive,
    judge_equal,
    judge_probability_at_least,
    judge_probability_at_most,
    summarise,
)

probabilities = st.floats(0, 1)


@given(probabilities, st.floats(1e-6, 0.5))
def test_a_lower_bound_above_the_exact_probability_is_violated(p, gap):
    assert judge_probability_at_least(p + gap, Estimate.exact(p))[0] == "violated"
    if p - gap > 0:
        assert judge_probability_at_least(p - gap, Estimate.exact(p))[0] == "holds"


@given(probabilities, st.floats(1e-6, 0.5))
def test_an_upper_bound_below_the_exact_probability_is_violated(p, gap):
    assert judge_probability_at_most(p - gap, Estimate.exact(p))[0] == "violated"
    if p + gap < 1:
        assert judge_probability_at_most(p + gap, Estimate.exact(p))[0] == "holds"


@given(st.floats(1, 1e6), probabilities)
def test_a_probability_upper_bound_of_at_least_one_is_vacuous(bound, p):
    assert judge_probability_at_most(bound, Estimate.exact(p))[0] == "vacuous"


@given(st.floats(-1e6, 0), probabilities)
def test_a_nonpositive_lower_bound_is_vacuous(bound, p):
    assert judge_probability_at_least(bound, Estimate.exact(p))[0] == "vacuous"


def test_a_lower_bound_above_one_is_violated_whatever_is_measured():
    assert judge_probability_at_least(1.5, Estimate.exact(1.0))[0] == "violated"


def test_monte_carlo_judgements_respect_the_interval():
    # 500 / 1000: a claim of <= 0.4 is far outside the interval, a claim of <= 0.49 is inside it.
    est = Estimate.proportion(500, 1000)
    assert judge_probability_at_most(0.4, est)[0] == "violated"
    assert judge_probability_at_most(0.49, est)[0] == "holds"
    assert judge_probability_at_least(0.6, est)[0] == "violated"
    assert judge_probability_at_least(0.51, est)[0] == "holds"


@given(st.integers(0, 200), st.integers(1, 200))
def test_proportion_interval_is_clopper_pearson(k, extra):
    n = k + extra
    est = Estimate.proportion(k, n)
    ref = stats.beta.ppf([(1 - 0.99999) / 2, 1 - (1 - 0.99999) / 2], [k, k + 1], [n - k + 1, n - k])
    lo = 0.0 if k == 0 else ref[0]
    hi = 1.0 if k == n else ref[1]
    assert math.isclose(est.low, lo, abs_tol=1e-9) and math.isclose(est.high, hi, abs_tol=1e-9)
    assert est.low <= est.value <= est.high


def test_differences_need_significance():
    rng = np.random.default_rng(0)
    assert judge_difference_positive(Estimate.mean(rng.normal(1.0, 0.1, 100)), what="d")[0] == "holds"
    assert judge_difference_positive(Estimate.mean(rng.normal(0.0, 1.0, 100)), what="d")[0] == "violated"
    assert judge_difference_at_most_zero(Estimate.mean(rng.normal(1.0, 0.1, 100)), what="d")[0] == "violated"
    assert judge_difference_at_most_zero(Estimate.mean(rng.normal(0.0, 1.0, 100)), what="d")[0] == "holds"


def test_exact_comparisons():
    assert judge_equal(3, 3, what="q")[0] == "holds"
    assert judge_equal(3, 2, what="q")[0] == "violated"
    assert judge_at_least(3, 2, what="q")[0] == "violated"
    assert judge_at_least(3, 4, what="q")[0] == "holds"


def test_a_deliberately_wrong_theorem_5_bound_is_reported_violated():
    # Halve the corrected (valid) bound where it is informative: the exact probability exceeds it.
    law = make_law("cantelli", 3.0, 1.0)
    exact = theorem5.exact_probability(law, 20, 0, 0.6, "opposite")
    valid = theorem5.claimed_bound(20, 0, 0.6, 3.0, reading="corrected")
    assert exact <= valid < 1
    assert judge_probability_at_most(valid, Estimate.exact(exact))[0] == "holds"
    assert judge_probability_at_most(exact / 2, Estimate.exact(exact))[0] == "violated"


def test_parameters_that_leave_the_trimmed_mean_undefined_are_inapplicable():
    # N = 20: alpha = 12 log(4 / delta) / 20 >= 0.83 for every delta < 1, so Definition 3 keeps nothing.
    records = theorem4.check(
        make_law("gaussian", 1.0, 1.0), 20, 0, 0.5, [1.0, 2.0], rng=np.random.default_rng(0), trials=100
    )
    assert records and {r.verdict for r in records} == {"inapplicable"}
    assert all("alpha" in r.reason for r in records)


def test_records_validate_their_vocabulary():
    with pytest.raises(ValueError, match="unknown claim"):
        Record("theorem_6", "p", "r", "holds", "")
    with pytest.raises(ValueError, match="unknown verdict"):
        Record("theorem_4", "p", "r", "true", "")


def test_summary_precedence():
    rows = [Record("theorem_4", "p", "r", v, "").to_dict() for v in ("holds", "vacuous", "violated", "inapplicable")]
    rows += [Record("theorem_5", "p", "r", v, "").to_dict() for v in ("vacuous", "holds")]
    rows += [Record("theorem_8", "p", "r", "inapplicable", "").to_dict()]
    out = {r["claim"]: r for r in summarise(rows)}
    assert out["theorem_4"]["verdict"] == "violated"
    assert out["theorem_5"]["verdict"] == "holds" and out["theorem_5"]["counts"] == {"holds": 1, "vacuous": 1}
    assert out["theorem_8"]["verdict"] == "inapplicable"


def test_records_serialise_to_plain_json():
    import json

    r = Record(
        "theorem_4",
        "p",
        "r",
        "holds",
        "",
        {"x": np.float64(1.5), "e": Estimate.proportion(3, 10), "inf": float("inf"), "a": np.arange(3)},
    )
    out = json.loads(json.dumps(r.to_dict()))
    assert (
        out["evidence"]["e"]["trials"] == 10 and out["evidence"]["inf"] == "inf" and out["evidence"]["a"] == [0, 1, 2]
    )
