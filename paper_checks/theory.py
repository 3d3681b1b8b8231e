"""The claims of Sections 4-5 and Appendix D.1, from ``linear_theory``'s records.

``linear_theory`` measures each claim over a grid of regimes, per part and reading, and judges
each regime (holds / violated / vacuous / inapplicable / ill-posed). Here a part and reading is
summarised over its regimes as ``linear_theory.records.summarise`` does (violated if any regime
violates it), and the claim's parts and readings become findings.
"""

from __future__ import annotations

from linear_theory.records import summarise

from .claims import Claim, Finding, register

STATEMENTS = {
    "theorem_4": (
        "Theorem 4 (Section 4.3)",
        "The trimmed mean of N values, N' of them malicious, is within (20 alpha + 10 sqrt(alpha) + 2c) sigma of "
        "the benign mean with the probability the theorem states",
        ("theorem_bounds",),
    ),
    "theorem_5": (
        "Theorem 5 (Section 4.2)",
        "The probability that a coordinate's sign consistency falls below tau is at most the theorem's bound",
        ("theorem_bounds",),
    ),
    "theorem_8": (
        "Theorem 8 (Section 5.2)",
        "The sign of the expected gradient on a weight w_k is fixed by mu_k and w_k as the theorem states",
        ("theorem8",),
    ),
    "corollary_9": (
        "Corollary 9 (Section 5.2)",
        "The sign consistency of the trigger coordinate is N'/N when w_k = 0, at least 1 - N'/N when "
        "w_k mu_k > 0, and 1 when w_k mu_k < 0",
        ("corollary9",),
    ),
    "failure_mode_1": (
        "Section 4.1, failure mode 1",
        "Outliers of the malicious clients defeat the AND-mask (coordinate-wise sign vote) but not the trimmed "
        "mean; the Invariant Aggregator errs no more often than either",
        ("failure_modes",),
    ),
    "failure_mode_2": (
        "Section 4.1, failure mode 2",
        "Inliers of the malicious clients that flip a weak benign sign defeat the trimmed mean but not the "
        "AND-mask; the Invariant Aggregator errs no more often than either",
        ("failure_modes",),
    ),
    "simulation_d1": (
        "Appendix D.1 (announced in Section 5)",
        "In the linear model's federated simulation, the AND-mask keeps the adversary from exploiting w_k and "
        "the trimmed mean shrinks w_k",
        ("simulation_d1",),
    ),
}


def _check(claim_id: str):
    def check(evidence) -> list[Finding]:
        records = evidence.theory()
        if records is None:
            return [Finding("", "not run", {}, evidence.why_missing("linear_theory"))]
        mine = [r for r in records if r["claim"] == claim_id]
        if not mine:
            return [Finding("", "not run", {}, f"linear_theory's records hold nothing for {claim_id}")]
        findings = []
        for row in summarise(mine):
            regimes = [r for r in mine if (r["part"], r["reading"]) == (row["part"], row["reading"])]
            example = next(r for r in regimes if r["verdict"] == row["verdict"])
            counts = ", ".join(f"{n} {v}" for v, n in row["counts"].items())
            findings.append(
                Finding(
                    row["reading"],
                    row["verdict"],
                    {"regimes": len(regimes), "counts": row["counts"]},
                    f"{counts} of {len(regimes)} regime(s); e.g. {example['reason']}",
                    part=row["part"],
                )
            )
        return findings

    return check


THEORY_CLAIMS = [
    register(Claim(f"theory.{cid}", statement, source, _check(cid), needs=("theory",), figures=figures))
    for cid, (source, statement, figures) in STATEMENTS.items()
]
