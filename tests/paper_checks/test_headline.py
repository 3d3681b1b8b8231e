"""The headline checks: readings from their definitions, known verdicts, the registry."""

import pytest

import paper_checks
from paper_checks import headline
from paper_checks.claims import CLAIMS, Claim, Finding, register, run_all
from paper_checks.evidence import Evidence
from paper_checks.table1 import PaperTable1, paper_table1


def _table(fedavg_b, ours_b, none_b, fedavg_m=0.9, ours_m=0.9, none_m=0.9):
    cells = {}
    for task in ("cifar10", "twitter", "phishing"):
        cells[("FedAvg", task)] = (fedavg_m, fedavg_b)
        cells[("Ours", task)] = (ours_m, ours_b)
        cells[("No Attack", task)] = (none_m, none_b)
    return PaperTable1(cells)


def test_readings_from_their_definitions():
    assert headline.reduction(0.8, 0.2, 0.0, "points") == pytest.approx(60.0)
    assert headline.reduction(0.8, 0.2, 0.0, "relative") == pytest.approx(75.0)
    assert headline.reduction(0.8, 0.2, 0.2, "gain") == pytest.approx(100.0)
    with pytest.raises(ValueError, match="unknown reading"):
        headline.reduction(0.8, 0.2, 0.0, "bogus")


def test_a_true_and_a_deliberately_wrong_claim():
    table = _table(0.8, 0.2, 0.0)  # 60 points, 75 % relative, 75 % of the gain on every task
    got = headline.average_reduction(table, 1, "points")
    assert got["value"] == pytest.approx(60.0) and got["low"] < 60.0 < got["high"]
    assert headline.judge(60.0, 1, got, "points").verdict == "reproduced"
    wrong = headline.judge(61.6, 1, got, "points")
    assert wrong.verdict == "not reproduced" and "does not meet the claimed 61.6" in wrong.why


def test_rounding_of_the_printed_cells_is_allowed_and_no_more():
    # three tasks, each cell within +-0.0005: the points mean moves by at most 0.1
    got = headline.average_reduction(_table(0.8, 0.2, 0.0), 1, "points")
    assert got["high"] - got["value"] == pytest.approx(0.1) and got["value"] - got["low"] == pytest.approx(0.1)
    assert headline.judge(60.1, 1, got, "points").verdict == "reproduced"  # [60.05, 60.15] meets [59.9, 60.1]
    assert headline.judge(60.14, 2, got, "points").verdict == "not reproduced"  # [60.135, 60.145] does not
    assert headline.judge(60.3, 1, got, "points").verdict == "not reproduced"


def test_the_papers_own_numbers():
    table = paper_table1()
    assert table.acc("Ours", "twitter") == (0.687, 0.296) and ("Freezing Layers", "twitter") not in table.cells
    # Twitter: (0.440 - 0.296) / (0.440 - 0.095) = 41.74 %, the paper's 41.7 % as the share of the gain
    twitter = headline.average_reduction(table, 1, "gain", tasks=("twitter",))
    assert twitter["value"] == pytest.approx(100 * 0.144 / 0.345)
    # the three tasks' points: 71.6, 14.4, 99.9 -> 61.97, not the abstract's 61.6
    points = headline.average_reduction(table, 1, "points")
    assert points["value"] == pytest.approx((71.6 + 14.4 + 99.9) / 3)


def test_every_headline_claim_is_registered_and_judged(tmp_path):
    from_table = {k: c for k, c in CLAIMS.items() if k.startswith("headline.") and not k.endswith("our_runs")}
    report = {r["id"]: r for r in run_all(Evidence(tmp_path), from_table)}
    assert {
        "headline.backdoor_reduction.abstract",
        "headline.backdoor_reduction.section6",
        "headline.backdoor_reduction.caption",
        "headline.utility_cost",
        "headline.twitter_mitigation",
    } <= set(report)
    assert report["headline.twitter_mitigation"]["verdict"] == "reproduced"
    assert report["headline.utility_cost"]["verdict"] == "reproduced"
    assert report["headline.backdoor_reduction.abstract"]["verdict"] == "not reproduced"
    assert all(len(r["findings"]) >= 2 for r in report.values())  # every reading is checked


def test_the_registry_refuses_a_taken_id():
    claim = next(iter(CLAIMS.values()))
    with pytest.raises(ValueError, match="already registered"):
        register(Claim(claim.id, "again", "nowhere", lambda: []))


def test_verdicts_are_from_the_vocabulary():
    with pytest.raises(ValueError, match="unknown verdict"):
        Finding("points", "sort of", {}, "")
    assert "reproduced" in paper_checks.claims.VERDICTS and "violated" in paper_checks.claims.VERDICTS
