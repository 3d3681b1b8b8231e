"""Coordinate-wise rules: each output coordinate depends only on that coordinate's N values.

The Invariant Aggregator (AND-mask ⊙ trimmed mean), its two halves, the median, the weighted
mean (FedAvg) and Sign-SGD's majority vote.
"""

from __future__ import annotations

import math

import torch

from .. import functional as F
from .._inputs import check_choice, check_real
from ..errors import AggregatorError
from .base import AggregationRule, check_backend, check_threshold, register

__all__ = ["Invariant", "AndMask", "MeanRatioTrimmedMean", "TrimmedMean", "Median", "FedAvg", "SignSGD"]


@register
class Invariant(AggregationRule):
    """The Invariant Aggregator (Algorithm 1): AND-mask ⊙ trimmed mean, per coordinate.

    .. math::
        m_k = \\mathbf 1\\big[\\,|\\tfrac1N \\textstyle\\sum_i \\operatorname{sign}(g_{ik})| \\ge \\tau\\big],\\qquad
        \\bar g_k = \\operatorname{TrMean}(g_{1k},\\dots,g_{Nk};\\alpha),\\qquad
        \\text{out} = m \\odot \\bar g

    Paper: "Invariant Aggregator for Defending against Federated Backdoor Attacks" (ICLR 2023
    submission; AISTATS 2024). Computed in one fused pass over the input on CPU.

    Conventions
        * ``tau`` is on the averaged scale in [0, 1] (the authors ran tau = 0.6); sign(0) = 0.
          Eq. 3 of the paper writes the unnormalised sum: pass ``tau_sum`` (= N * tau) instead,
          never both. The comparison is exact: tau = 0.6, N = 20 needs |sum sign| >= 12.
        * ``trim="definition3"`` (default) keeps x_(k)..x_(N-k-1), k = ceil(alpha N).
          ``trim="authors"`` reproduces the authors' code: positions [int(0.45N), int(0.55N)),
          the median's two middle values at N = 20; ``alpha`` must then be left unset.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[1.0, 1.0], [2.0, -1.0], [3.0, 1.0], [4.0, -1.0], [100.0, 1.0]])
        >>> ia.make("invariant", tau=0.6, alpha=0.2)(g)
        array([3., 0.])
    """

    name = "invariant"

    def __init__(self, tau=None, alpha=None, *, tau_sum=None, trim="definition3", backend="auto"):
        trim = check_choice("trim", trim, F.TRIM_MODES)
        tau, tau_sum = check_threshold(tau, tau_sum)
        if trim == "authors":
            if alpha is not None:
                raise AggregatorError("trim='authors' fixes the kept positions; leave alpha unset")
        else:
            alpha = check_real("alpha", 0.2 if alpha is None else alpha, 0.0, 0.5, high_open=True)
        self._set(tau=tau, alpha=alpha, tau_sum=tau_sum, trim=trim)
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.invariant_aggregate(
            stack, self.tau, self.alpha, tau_sum=self.tau_sum, trim=self.trim, backend=self.backend
        )


@register
class AndMask(AggregationRule):
    """AND-mask alone: m ⊙ mean(g), m_k = 1[|(1/N) sum_i sign(g_ik)| >= tau] (Parascandolo et al. 2021).

    Same ``tau`` / ``tau_sum`` conventions as :class:`Invariant`.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("and_mask", tau=1.0)(np.array([[1.0, 1.0], [3.0, -1.0]]))
        array([2., 0.])
    """

    name = "and_mask"

    def __init__(self, tau=None, *, tau_sum=None, backend="auto"):
        tau, tau_sum = check_threshold(tau, tau_sum)
        self._set(tau=tau, tau_sum=tau_sum)
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.and_mask_mean(stack, self.tau, tau_sum=self.tau_sum, backend=self.backend)


@register
class MeanRatioTrimmedMean(AggregationRule):
    """The ablation of the paper's Appendix D.2: the AND-mask replaced by a filter on the sample
    mean/variance ratio, combined with the same trimmed mean.

    .. math::
        r_k = |\\bar g_k| / s_k \\quad (\\text{sample std, ddof} = 1),\\qquad
        m_k = \\mathbf 1[r_k \\ge \\theta],\\qquad \\text{out} = m \\odot \\operatorname{TrMean}(g;\\alpha)

    Either a fixed ``threshold`` theta, or ``match_tau``: keep exactly as many coordinates as
    the AND-mask at that tau keeps on the same updates, choosing those of largest ratio (ties:
    lowest index). The second is the comparison at matched fractions of coordinates kept: it
    tests *which* coordinates each filter keeps, not how many. The paper argues the ratio is
    "over-aggressive when the benign value has a consistent sign but varying magnitudes".
    A coordinate with std 0 has ratio inf if its mean is non-zero, else 0.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[1.0, 1.0], [1.0, -3.0], [1.0, 2.0], [1.0, 4.0], [2.0, 1.0]])
        >>> ia.make("mean_ratio", threshold=1.0, alpha=0.2)(g)  # ratios 2.68 and 0.39
        array([1., 0.])
    """

    name = "mean_ratio"

    def __init__(self, threshold=None, alpha=0.2, *, match_tau=None, backend="auto"):
        if (threshold is None) == (match_tau is None):
            raise AggregatorError(
                "mean_ratio needs exactly one of threshold (keep |mean|/std >= threshold) or match_tau "
                "(keep as many coordinates as the AND-mask at that tau)"
            )
        self._set(
            threshold=None if threshold is None else check_real("threshold", threshold, 0.0, math.inf),
            alpha=check_real("alpha", alpha, 0.0, 0.5, high_open=True),
            match_tau=None if match_tau is None else check_real("match_tau", match_tau, 0.0, 1.0),
        )
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        ratio = F.mean_std_ratio(stack)
        if self.threshold is not None:
            mask = (ratio >= self.threshold).to(torch.float64)
        else:
            counts = F.sign_sum(stack, backend=self.backend).abs()
            keep = int((counts >= F.min_agreeing_signs(stack.n, self.match_tau)).sum())
            mask = F.top_fraction_mask(ratio, keep)
        trimmed = F.trimmed_mean(stack, self.alpha, backend=self.backend)
        return (trimmed.to(torch.float64) * mask.to(trimmed.device)).to(stack.dtype)


@register
class TrimmedMean(AggregationRule):
    """Coordinate-wise trimmed mean (Definition 3; Xie et al. 2020, Yin et al. 2018).

    TrMean(x; alpha) = 1/(N - 2k) * sum_{i=k}^{N-k-1} x_(i), k = ceil(alpha N), 0-based order
    statistics. alpha in [0, 0.5); alpha = 0 is the mean. ``trim="authors"`` as in :class:`Invariant`.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("trimmed_mean", alpha=0.2)(np.array([[0.0], [1.0], [2.0], [3.0], [50.0]]))
        array([2.])
    """

    name = "trimmed_mean"

    def __init__(self, alpha=0.2, *, trim="definition3", backend="auto"):
        trim = check_choice("trim", trim, F.TRIM_MODES)
        alpha = None if trim == "authors" else check_real("alpha", alpha, 0.0, 0.5, high_open=True)
        self._set(alpha=alpha, trim=trim)
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.trimmed_mean(stack, self.alpha, trim=self.trim, backend=self.backend)


@register
class Median(AggregationRule):
    """Coordinate-wise median; even N: the midpoint of the two middle values.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("median")(np.array([[1.0], [2.0], [10.0], [4.0]]))
        array([3.])
    """

    name = "median"

    def __init__(self, *, backend="auto"):
        self._set()
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.coordinate_median(stack, backend=self.backend)


@register
class FedAvg(AggregationRule):
    """Weighted mean sum_i w_i g_i / sum_i w_i (McMahan et al. 2017); uniform by default.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("fedavg")(np.array([[1.0], [3.0]]), weights=[3, 1])
        array([1.5])
    """

    name = "fedavg"
    accepts_weights = True

    def __init__(self, *, backend="auto"):
        self._set()
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.weighted_mean(stack, weights, backend=self.backend)


@register
class SignSGD(AggregationRule):
    """Majority vote of signs times a server step: lr * sign(sum_i sign(g_i)) (Bernstein et al. 2019).

    Ties (and all-zero coordinates) give 0, so the output takes only the values -lr, 0, +lr.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("sign_sgd", lr=0.1)(np.array([[1.0, -2.0, 1.0], [5.0, -1.0, -1.0], [-9.0, 3.0, 0.0]]))
        array([ 0.1, -0.1,  0. ])
    """

    name = "sign_sgd"

    def __init__(self, lr=1e-3, *, backend="auto"):
        self._set(lr=check_real("lr", lr, 0.0, math.inf, low_open=True))
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        s = F.sign_sum(stack, backend=self.backend)
        return torch.sign(s).to(stack.dtype) * self.lr
