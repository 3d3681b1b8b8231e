"""paper_checks: every checkable claim of the paper as a check with a verdict and its numbers.

A claim is registered once (:func:`paper_checks.claims.register` refuses a taken id), states
where in the paper it comes from and, when the paper's statement has several readings, checks
each. This first part holds the claims that the paper's own Table 1 decides: the headline
numbers of the abstract, Section 6.2 and the Table 1 caption (:mod:`paper_checks.headline`).
"""

from . import headline  # noqa: F401  (registers the headline claims)
from .claims import CLAIMS, Claim, Finding, register, run_all
from .table1 import PaperTable1, paper_table1

__all__ = ["CLAIMS", "Claim", "Finding", "PaperTable1", "paper_table1", "register", "run_all"]
