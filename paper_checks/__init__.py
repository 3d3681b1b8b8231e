"""paper_checks: every checkable claim of the paper as a check with a verdict and its numbers.

A claim is registered once (:func:`paper_checks.claims.register` refuses a taken id), states
where in the paper it comes from, reads its evidence from a results folder
(:class:`paper_checks.evidence.Evidence`) and, when the paper's statement has several readings,
checks each. :func:`paper_checks.run` plans and runs the experiments, checks every claim and
writes the report; ``python -m paper_checks`` is its command line.

The claims: the headline numbers from the paper's own Table 1 (:mod:`paper_checks.headline`),
the theory of Sections 4-5 and Appendix D.1 (:mod:`paper_checks.theory`), and the experimental
claims on our runs (:mod:`paper_checks.experiments`).
"""

from . import adaptive, experiments, headline, theory  # noqa: F401  (each registers its claims)
from .claims import CLAIMS, Claim, Finding, register, run_all
from .evidence import Evidence
from .table1 import PaperTable1, paper_table1

__all__ = ["CLAIMS", "Claim", "Evidence", "Finding", "PaperTable1", "paper_table1", "register", "run_all"]
