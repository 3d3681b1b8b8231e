"""Scalar laws for the one-coordinate theorems (4 and 5), each fixed by its mean and std.

Gaussians are the easy case. The others are there because they make Chebyshev-type bounds
tight or stress the trimmed mean:

* ``cantelli``: the two-point law that maximises P(x <= 0) for a given mean and std (Cantelli's
  inequality is attained by it); its lower atom sits just below 0 so that its sign is -1.
* ``rare_atom``: a two-point law with a rare far atom on one side (skewed): trimming removes the
  atom and biases the trimmed mean by about sqrt(p) std.
* ``student_t3``: Student's t with 3 degrees of freedom scaled to the given std (finite variance,
  heavy tails).
* ``lognormal``: a right-skewed law (log-sd 1), shifted and scaled to the given mean and std.

Two-point laws are discrete, so probabilities over them are computed exactly from binomial
counts; continuous laws expose their exact sign probabilities through their CDF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LAW_NAMES = ("gaussian", "cantelli", "rare_atom", "student_t3", "lognormal")


@dataclass(frozen=True)
class ScalarLaw:
    name: str
    mean: float
    std: float
    atoms: tuple[tuple[float, float], ...] | None = None  # ((value, prob), ...) for discrete laws
    _dist: object = None  # frozen scipy distribution of the standardised shape (continuous laws)
    _loc: float = 0.0
    _scale: float = 1.0

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        if self.atoms is not None:
            values = np.array([a for a, _ in self.atoms])
            probs = np.array([p for _, p in self.atoms])
            return (
                values[(rng.random(size) < probs[1]).astype(np.int64)]
                if len(values) == 2
                else rng.choice(values, size=size, p=probs)
            )
        return self._loc + self._scale * self._dist.rvs(size=size, random_state=rng)

    def prob_below(self, x: float, *, inclusive: bool) -> float:
        """P(X < x) or P(X <= x), exactly."""
        if self.atoms is not None:
            return float(sum(p for a, p in self.atoms if (a <= x if inclusive else a < x)))
        return float(self._dist.cdf((x - self._loc) / self._scale))

    def sign_probabilities(self) -> tuple[float, float, float]:
        """(P(sign x = -sign E x), P(x = 0), P(sign x = sign E x)) — exact."""
        if self.mean == 0:
            raise ValueError("the sign of the mean is undefined for a law with mean 0")
        neg = self.prob_below(0.0, inclusive=False)
        nonpos = self.prob_below(0.0, inclusive=True)
        zero = nonpos - neg
        pos = 1.0 - nonpos
        return (neg, zero, pos) if self.mean > 0 else (pos, zero, neg)

    def describe(self) -> dict:
        out = {"law": self.name, "mean": self.mean, "std": self.std}
        if self.atoms is not None:
            out["atoms"] = [list(a) for a in self.atoms]
        return out


def make_law(name: str, mean: float, std: float, **shape) -> ScalarLaw:
    """The law ``name`` with the given mean and std (> 0); see the module docstring."""
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        raise ValueError(f"a law needs a finite mean and a finite std > 0, got mean={mean}, std={std}")
    if name == "gaussian":
        return ScalarLaw(name, mean, std, None, stats.norm(), mean, std)
    if name == "student_t3":
        df = 3.0
        return ScalarLaw(name, mean, std, None, stats.t(df), mean, std / math.sqrt(df / (df - 2)))
    if name == "lognormal":
        s = float(shape.get("log_sd", 1.0))
        d = stats.lognorm(s)
        return ScalarLaw(name, mean, std, None, d, mean - std * d.mean() / d.std(), std / d.std())
    if name == "cantelli":
        # Two points m - t < 0 < m + std^2 / t with P(m - t) = std^2 / (std^2 + t^2); t just above |m|.
        eps = float(shape.get("eps", 1e-3))
        m = abs(mean)
        if m == 0:
            raise ValueError("the Cantelli law needs a non-zero mean")
        t = m * (1 + eps)
        q = std**2 / (std**2 + t**2)
        lo, hi = m - t, m + std**2 / t
        sgn = 1.0 if mean > 0 else -1.0
        atoms = ((sgn * lo, q), (sgn * hi, 1 - q)) if sgn > 0 else ((sgn * hi, 1 - q), (sgn * lo, q))
        return ScalarLaw(name, mean, std, atoms)
    if name == "rare_atom":
        p = float(shape.get("p", 0.05))
        if not 0 < p < 1:
            raise ValueError(f"rare_atom needs 0 < p < 1, got {p}")
        gap = std / math.sqrt(p * (1 - p))
        lo = mean - p * gap
        return ScalarLaw(name, mean, std, ((lo, 1 - p), (lo + gap, p)))
    raise ValueError(f"unknown law {name!r}; expected one of {LAW_NAMES}")
