"""The claim registry: a claim, its readings, and what each reading gives.

Verdicts: the vocabulary of ``linear_theory.records`` (holds / violated / vacuous /
inapplicable / ill-posed) for mathematical claims, and ``reproduced`` / ``not reproduced`` /
``not run`` for numbers and experiments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from linear_theory.records import VERDICTS as THEORY_VERDICTS

VERDICTS = (*THEORY_VERDICTS, "reproduced", "not reproduced", "not run")


@dataclass(frozen=True)
class Finding:
    """What one reading of a claim gives: a verdict, the numbers behind it, and why."""

    reading: str
    verdict: str
    numbers: dict
    why: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; expected one of {VERDICTS}")


@dataclass(frozen=True)
class Claim:
    """A checkable statement of the paper: ``check()`` returns one :class:`Finding` per reading."""

    id: str
    statement: str
    source: str  # where in the paper: "abstract", "Section 6.2", "Table 1 caption", ...
    check: Callable[[], list[Finding]] = field(compare=False)

    def verdict(self, findings: list[Finding]) -> str:
        """The claim's overall verdict: reproduced if any reading reproduces it (the readings are
        the paper's possible meanings), otherwise that of the first reading."""
        if any(f.verdict in ("reproduced", "holds") for f in findings):
            return next(f.verdict for f in findings if f.verdict in ("reproduced", "holds"))
        return findings[0].verdict


CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim; a taken id is refused (a claim is never silently replaced)."""
    if claim.id in CLAIMS:
        raise ValueError(f"a claim with id {claim.id!r} is already registered ({CLAIMS[claim.id].source})")
    CLAIMS[claim.id] = claim
    return claim


def run_all(claims: dict[str, Claim] | None = None) -> list[dict]:
    """Every claim's findings and overall verdict, as plain data (for report.json)."""
    out = []
    for claim in (claims or CLAIMS).values():
        findings = claim.check()
        out.append(
            {
                "id": claim.id,
                "statement": claim.statement,
                "source": claim.source,
                "verdict": claim.verdict(findings),
                "findings": [f.__dict__ for f in findings],
            }
        )
    return out
