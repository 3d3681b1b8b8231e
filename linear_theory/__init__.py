"""linear_theory: Sections 4-5 of the paper (Theorems 4, 5, 8, Corollary 9, Fig. 1, Appendix D.1)
as executable checks that report what they find.

Every check returns :class:`~linear_theory.records.Record` objects: claim, part, reading,
verdict (holds / violated / vacuous / inapplicable / ill-posed), reason and evidence (claimed
value, measured value, exact or Monte Carlo with its error, parameters). Every aggregation goes
through the shared core, :mod:`invariant_aggregator`.

>>> import numpy as np
>>> from linear_theory import theorem5
>>> from linear_theory.laws import make_law
>>> law = make_law("cantelli", 3.0, 1.0)  # the law that makes Chebyshev tight
>>> exact = theorem5.exact_probability(law, 10, 0, 0.2, "opposite")
>>> printed = theorem5.claimed_bound(10, 0, 0.2, 3.0, reading="printed")
>>> bool(printed < exact)  # the printed bound fails here
True

Run everything with ``python -m linear_theory --json results.json`` (``--quick`` for a short run).
"""

from .model import GaussianDataModel
from .records import CLAIMS, VERDICTS, Estimate, Record, summarise

__all__ = ["CLAIMS", "VERDICTS", "Estimate", "GaussianDataModel", "Record", "summarise"]
