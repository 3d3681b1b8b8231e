"""Theorem 8: the sign of a client's expected gradient in the Gaussian data model.

As printed (k-th feature, mu_k the client's mean of it):
  (i)  mu_k != 0 and w_k mu_k <= 0  =>  sign E[dl/dw_k] = sign(mu_k);
  (ii) mu_k = 0                     =>  sign E[dl/dw_k] = sign(w_k).

The exact expected gradient is -mu_k E[s(-Z)] + w_k var_k E[s'(Z)] (see ``gradients``), with
both expectations positive, so (i) comes out as -sign(mu_k) and (ii) as sign(w_k) for the
gradient of the loss. No single sign convention makes both parts true: (i) holds for the
descent direction -dl/dw_k, (ii) for the gradient itself. Both readings are checked, under
both readings of Eq. 6's sigma, over weight vectors whose score spread runs from 0.1 to 100,
and every exact value is compared with a Monte-Carlo estimate from the sympy gradient.
"""

from __future__ import annotations

import itertools

import numpy as np

from .gradients import expected_gradient, expected_gradient_sign, monte_carlo_gradient
from .model import GaussianDataModel, score_moments
from .records import Record, confidence_z

CLAIM = "theorem_8"
PART_I = "(i) mu_k != 0, w_k mu_k <= 0: sign = sign(mu_k)"
PART_II = "(ii) mu_k = 0: sign = sign(w_k)"
PART_REMARK = "remark: w_k mu_k > 0 leaves the sign indefinite"
# (reading, factor applied to the gradient's sign)
CONVENTIONS = (("as printed (gradient of the loss)", 1.0), ("descent direction (-gradient)", -1.0))

MIN_ESS = 200  # fewer effective samples: the Monte-Carlo stderr is itself unreliable
MU_K = (-2.0, -0.2, 0.0, 0.2, 2.0)
W_K = (-3.0, -0.3, 0.0, 0.3, 3.0)


def cases(spreads, sigmas, replicates: int, rng: np.random.Generator, n_features: int = 4):
    """Every (mu_k, w_k, spread, sigma) with ``replicates`` random draws of the other features."""
    rows = []
    for mu_k, w_k, spread, sigma in itertools.product(MU_K, W_K, spreads, sigmas):
        for _ in range(replicates):
            mu = np.concatenate([[mu_k], rng.normal(0.5, 0.5, n_features - 1)])
            w = np.concatenate([[w_k], spread * rng.standard_normal(n_features - 1)])
            rows.append((mu_k, w_k, spread, sigma, mu, w))
    return rows


def check(
    *,
    rng: np.random.Generator,
    spreads=(0.1, 1.0, 10.0, 100.0),
    sigmas=(0.3, 3.0),
    replicates: int = 3,
    mc_samples: int = 4000,
) -> list[Record]:
    rows = cases(spreads, sigmas, replicates, rng)
    mu = np.array([r[4] for r in rows])
    w = np.array([r[5] for r in rows])
    sigma = np.array([[r[3]] * mu.shape[1] for r in rows])
    groups: dict[tuple, list[int]] = {}  # (mu_k, w_k, spread, sigma) -> its replicate rows
    for i, r in enumerate(rows):
        groups.setdefault(r[:4], []).append(i)
    records = []
    z = confidence_z()
    for sigma_is in ("std", "variance"):
        model = GaussianDataModel(mu, sigma, sigma_is)
        exact = expected_gradient(model.mu, model.variance, w)[:, 0]
        sign = expected_gradient_sign(model.mu, model.variance, w)[:, 0]
        mc_mean, mc_se, mc_ess = monte_carlo_gradient(model, w, rng, mc_samples)
        mc_mean, mc_se, mc_ess = mc_mean[:, 0], mc_se[:, 0], mc_ess[:, 0]
        informative = mc_ess >= MIN_ESS
        score_sd = np.sqrt(score_moments(model.mu, model.variance, w)[1])
        for reading, flip in CONVENTIONS:
            indefinite = []
            for (mu_k, w_k, spread, sig), idx in groups.items():
                evidence = {
                    "parameters": {
                        "mu_k": mu_k,
                        "w_k": w_k,
                        "weight_spread": spread,
                        "sigma": sig,
                        "sigma_is": sigma_is,
                        "score_sd": score_sd[idx],
                        "replicates": len(idx),
                    },
                    "exact_expected_gradient": exact[idx],
                    "exact_sign": sign[idx],
                    "monte_carlo_mean": mc_mean[idx],
                    "monte_carlo_stderr": mc_se[idx],
                    "monte_carlo_samples": mc_samples,
                    "monte_carlo_effective_samples": mc_ess[idx],
                    # Checked only where enough samples carry the estimate (see monte_carlo_gradient).
                    "monte_carlo_agrees": bool(
                        np.all((np.abs(exact[idx] - mc_mean[idx]) <= z * mc_se[idx] + 1e-12) | ~informative[idx])
                    ),
                    "monte_carlo_checked": int(informative[idx].sum()),
                }
                measured = flip * sign[idx]
                if mu_k != 0 and w_k * mu_k > 0:
                    indefinite.extend(measured.tolist())
                    continue
                if mu_k != 0:
                    part, claimed, what = PART_I, np.sign(mu_k), "sign(mu_k)"
                else:
                    part, claimed, what = PART_II, np.sign(w_k), "sign(w_k)"
                ok = np.all(measured == claimed)
                verdict = "holds" if ok else "violated"
                reason = (
                    f"{'gradient' if flip > 0 else '-gradient'} sign {sorted(set(measured.tolist()))} "
                    f"{'equals' if ok else 'differs from'} {what} = {claimed:+.0f} in all {len(idx)} draws"
                )
                evidence["claimed_sign"] = claimed
                records.append(Record(CLAIM, part, f"{reading}, sigma = {sigma_is}", verdict, reason, evidence))
            pos, neg = indefinite.count(1.0), indefinite.count(-1.0)
            both = pos > 0 and neg > 0
            records.append(
                Record(
                    CLAIM,
                    PART_REMARK,
                    f"{reading}, sigma = {sigma_is}",
                    "holds" if both else "violated",
                    f"across {len(indefinite)} cases with w_k mu_k > 0 the sign was + in {pos} and - in {neg}"
                    + ("" if both else ": one sign only, so not shown indefinite on this grid"),
                    {"positive": pos, "negative": neg, "zero": indefinite.count(0.0)},
                )
            )
    return records
