"""Corollary 9: sign consistency of the trigger's expected gradient across clients.

Setting (Section 5.1): mu_k = 0 on the N - N' benign clients, one shared mu_k != 0 on the N'
malicious ones; q = |(1/N) sum_i sign E_i[dl/dw_k]| (Definition 7, sign(0) = 0). As printed:
  (a) w_k = 0            =>  q = N'/N;
  (b) w_k mu_k > 0       =>  q >= 1 - N'/N;
  (c) w_k mu_k < 0       =>  q = 1.

Benign clients' gradient is w_k var_k E[s'(Z)]: sign(w_k). A malicious client's sign is
-sign(mu_k) when w_k mu_k <= 0 (Theorem 8 (i), corrected) and either sign when w_k mu_k > 0:
when it opposes the benign clients (the attacker still pulls w_k further), q = 1 - 2N'/N,
below the printed bound. The corrected reading of (b), q >= |1 - 2N'/N|, is checked beside it.
Signs come from the exact expected gradients in log space (``expected_gradient_sign``).
"""

from __future__ import annotations

import itertools

import numpy as np

from invariant_aggregator import functional as F

from .gradients import expected_gradient_sign
from .model import GaussianDataModel
from .records import Record, judge_at_least, judge_equal

CLAIM = "corollary_9"
PART_A = "(a) w_k = 0: q = N'/N"
PART_B = "(b) w_k mu_k > 0: q >= 1 - N'/N"
PART_C = "(c) w_k mu_k < 0: q = 1"

W_CASES = {"zero": 0.0, "aligned small": 0.05, "aligned large": 5.0, "opposed": -0.5}  # times sign(mu_k)


def consistency(signs: np.ndarray) -> tuple[int, float]:
    """(sum of signs, q) of one coordinate across clients, counted by the core."""
    total = int(F.sign_sum(np.asarray(signs, dtype=np.float64)[:, None])[0])
    return total, abs(total) / len(signs)


def check(
    *,
    rng: np.random.Generator,
    ns=(5, 10, 20, 50),
    fractions=(0.1, 0.2, 0.3, 0.45),
    trigger_mus=(-2.0, 0.5, 2.0),
    spreads=(1.0, 10.0),
    n_features: int = 6,
) -> list[Record]:
    records = []
    for n, frac, mu_t, spread in itertools.product(ns, fractions, trigger_mus, spreads):
        n_mal = max(1, round(frac * n))
        model = GaussianDataModel.with_trigger(
            n_clients=n, n_malicious=n_mal, n_features=n_features, trigger_mu=mu_t, rng=rng, malicious_signal=1.0
        )
        k = model.trigger
        w_other = spread * rng.standard_normal(n_features)
        for case, factor in W_CASES.items():
            w = w_other.copy()
            w[k] = factor * np.sign(mu_t)
            signs = expected_gradient_sign(model.mu, model.variance, w)[:, k]
            total, q = consistency(signs)
            params = {
                "N": n,
                "N_malicious": n_mal,
                "trigger_mu": mu_t,
                "w_k": w[k],
                "weight_spread": spread,
                "sigma_is": model.sigma_is,
                "w_case": case,
            }
            evidence = {
                "parameters": params,
                "q": q,
                "sum_of_signs": total,
                "benign_signs": signs[~model.malicious],
                "malicious_signs": signs[model.malicious],
            }
            if case == "zero":
                verdict, reason = judge_equal(n_mal, abs(total), what="|sum of signs|")
                records.append(
                    Record(CLAIM, PART_A, "as printed", verdict, reason, {**evidence, "claimed_q": n_mal / n})
                )
            elif case.startswith("aligned"):
                for reading, claimed in (
                    ("as printed", n - n_mal),
                    ("corrected: q >= |1 - 2N'/N|", abs(n - 2 * n_mal)),
                ):
                    verdict, reason = judge_at_least(claimed, abs(total), what="|sum of signs|")
                    records.append(
                        Record(CLAIM, PART_B, reading, verdict, reason, {**evidence, "claimed_q": claimed / n})
                    )
            else:
                verdict, reason = judge_equal(n, abs(total), what="|sum of signs|")
                records.append(Record(CLAIM, PART_C, "as printed", verdict, reason, {**evidence, "claimed_q": 1.0}))
    return records
