"""The verdict logic of claims (parts and readings), the theory claims from linear_theory's
records, and a deliberately wrong claim that must come out violated."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from linear_theory.records import Estimate, judge_probability_at_most
from paper_checks.claims import (
    CLAIMS,
    VERDICTS,
    Claim,
    Finding,
    candidate_readings,
    evaluate,
    overall_verdict,
    part_verdicts,
)
from paper_checks.evidence import Evidence

from .support import write

FAILING = {"violated", "not reproduced", "ill-posed"}
PASSING = {"holds", "reproduced"}

findings_st = st.lists(
    st.builds(
        Finding,
        reading=st.sampled_from(["r1", "r2", "corrected r3"]),
        verdict=st.sampled_from(VERDICTS),
        numbers=st.just({}),
        why=st.just(""),
        part=st.sampled_from(["a", "b", "c"]),
    ),
    max_size=12,
    unique_by=lambda f: (f.part, f.reading),
)


def _cell(findings, part, reading):
    mine = [f for f in findings if f.part == part]
    named = [f for f in mine if f.reading == reading]
    return named[0].verdict if named else (mine[0].verdict if len(mine) == 1 else None)


@given(findings_st)
def test_a_claim_holds_when_one_reading_holds_in_every_part(findings):
    overall = overall_verdict(findings)
    parts = {f.part for f in findings}
    readings = set(candidate_readings(findings))
    cells = {r: [_cell(findings, p, r) for p in parts] for r in readings}
    if any(cells[r] and all(c in PASSING for c in cells[r]) for r in readings):
        assert overall in PASSING
    if overall in PASSING:  # then some plain reading fails in no part
        assert any(not any(c in FAILING for c in cells[r]) for r in readings)
    if readings and all(any(c in ("violated", "not reproduced") for c in cells[r]) for r in readings):
        assert overall not in PASSING


def test_readings_must_agree_across_parts():
    # part (i) holds only under reading A, part (ii) only under B: no one meaning makes both true
    crossed = [
        Finding("A", "holds", {}, "", "(i)"),
        Finding("B", "violated", {}, "", "(i)"),
        Finding("A", "violated", {}, "", "(ii)"),
        Finding("B", "holds", {}, "", "(ii)"),
    ]
    assert overall_verdict(crossed) == "violated"
    assert part_verdicts(crossed) == {"(i)": "holds", "(ii)": "holds"}  # each part alone has a reading
    # a correction never rescues the printed statement
    fixed = [Finding("as printed", "violated", {}, "", "p"), Finding("corrected: x", "holds", {}, "", "p")]
    assert overall_verdict(fixed) == "violated"
    # a part that could not apply (the attack did not work) does not count against the reading
    applied = [Finding("A", "reproduced", {}, "", "t1"), Finding("", "inapplicable", {}, "", "t2")]
    assert overall_verdict(applied) == "reproduced"
    # a reading that speaks to one part only does not decide: the full ones do
    partial = [
        Finding("whole rule", "holds", {}, "", "p1"),
        Finding("whole rule", "violated", {}, "", "p2"),
        Finding("half of it", "holds", {}, "", "p2"),
        Finding("other half", "holds", {}, "", "p1"),
    ]
    assert overall_verdict(partial) == "violated"


def test_a_deliberately_wrong_claim_is_violated():
    # P(Binomial(10, 1/2) >= 9) = 11/1024 exactly; the wrong claim says it is at most 0.001
    def check(evidence):
        p = Estimate.exact(stats.binom.sf(8, 10, 0.5))
        verdict, why = judge_probability_at_most(0.001, p)
        return [Finding("as stated", verdict, {"p": p.value}, why)]

    entry = evaluate(Claim("test.wrong", "P(Bin(10, 1/2) >= 9) <= 0.001", "test", check), Evidence("."))
    assert entry["verdict"] == "violated" and entry["findings"][0]["numbers"]["p"] == 11 / 1024


def test_a_check_that_raises_is_reported_not_dropped():
    def broken(evidence):
        raise KeyError("acc_b")

    entry = evaluate(Claim("test.broken", "s", "test", broken), Evidence("."))
    assert entry["verdict"] == "not run" and "KeyError" in entry["findings"][0]["why"]


def _record(part, reading, verdict):
    return {"claim": "theorem_5", "part": part, "reading": reading, "verdict": verdict, "reason": "r", "evidence": {}}


def test_theory_claims_summarise_linear_theorys_records(tmp_path):
    records = [
        _record("bound", "as printed", "violated"),
        _record("bound", "as printed", "holds"),  # one violating regime makes the reading violated
        _record("bound", "corrected", "holds"),
        _record("other part", "corrected", "holds"),
        _record("other part", "as printed", "vacuous"),
    ]
    write(tmp_path, "linear_theory.json", records)
    entry = evaluate(CLAIMS["theory.theorem_5"], Evidence(tmp_path))
    assert entry["readings"] == {"as printed": "violated", "corrected": "holds"}
    assert entry["verdict"] == "violated"  # the printed statement fails; the correction is beside it
    got = {(f["part"], f["reading"]): f for f in entry["findings"]}
    assert got[("bound", "as printed")]["verdict"] == "violated"
    assert got[("bound", "as printed")]["numbers"]["counts"] == {"holds": 1, "violated": 1}
    assert entry["holding_readings"] == ["corrected"]
    # without the records: not run, and why
    empty = evaluate(CLAIMS["theory.theorem_4"], Evidence(tmp_path / "nothing"))
    assert empty["verdict"] == "not run" and "linear_theory" in empty["findings"][0]["why"]


def test_every_claim_says_what_it_needs_and_where_it_comes_from():
    from paper_checks.plan import STAGE_KINDS

    for claim in CLAIMS.values():
        assert claim.source and claim.statement
        assert set(claim.needs) <= set(STAGE_KINDS)
