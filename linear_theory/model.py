"""The Gaussian data model of Section 5.1 (Eq. 6), with its sigma convention made explicit.

On client i, labels are balanced, y ~ Bernoulli(1/2), and feature k is

    x_k | y ~ N((2y - 1) * mu[i, k],  sigma[i, k])        (Eq. 6, diagonal covariance)

The paper writes N(mean, sigma), calls sigma a variance in places and uses it as a standard
deviation in others. Here the reading is a required choice: ``sigma_is="std"`` (variance
sigma**2) or ``sigma_is="variance"`` (variance sigma). Every result that depends on it is
computed under both readings by the checks, and every record names the one it used.

The backdoor of Section 5.1: one trigger feature k* with mu = 0 on the N - N' benign clients
and one shared non-zero mu on the N' malicious clients.

>>> import numpy as np
>>> m = GaussianDataModel.with_trigger(n_clients=5, n_malicious=1, n_features=3, trigger_mu=2.0,
...                                    rng=np.random.default_rng(0))
>>> m.mu[:, m.trigger].tolist()
[0.0, 0.0, 0.0, 0.0, 2.0]
>>> x, y = m.sample(np.random.default_rng(1), 4)
>>> x.shape, y.shape
((5, 4, 3), (5, 4))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

SIGMA_READINGS = ("std", "variance")


def check_sigma_reading(sigma_is: str) -> str:
    if sigma_is not in SIGMA_READINGS:
        raise ValueError(
            f"sigma_is={sigma_is!r} is not a reading of Eq. 6's sigma; use 'std' (x ~ N(m, sigma**2)) "
            f"or 'variance' (x ~ N(m, sigma))"
        )
    return sigma_is


@dataclass(frozen=True)
class GaussianDataModel:
    """Per-client class-conditional Gaussians with diagonal covariance (Eq. 6).

    ``mu`` and ``sigma`` are (clients, features); ``malicious`` is a boolean (clients,) mask;
    ``trigger`` is the backdoor feature's index or None.
    """

    mu: np.ndarray
    sigma: np.ndarray
    sigma_is: str = "std"
    malicious: np.ndarray | None = None
    trigger: int | None = None

    def __post_init__(self):
        mu = np.atleast_2d(np.asarray(self.mu, dtype=np.float64))
        sigma = np.broadcast_to(np.asarray(self.sigma, dtype=np.float64), mu.shape).copy()
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
            raise ValueError("mu and sigma must be finite; replace NaN/Inf entries of the data model")
        if np.any(sigma <= 0):
            raise ValueError("every sigma must be > 0 (a degenerate feature has no Gaussian density)")
        check_sigma_reading(self.sigma_is)
        malicious = np.zeros(mu.shape[0], bool) if self.malicious is None else np.asarray(self.malicious, bool)
        if malicious.shape != (mu.shape[0],):
            raise ValueError(f"malicious must be a boolean mask of length {mu.shape[0]} (one per client)")
        if self.trigger is not None and not 0 <= int(self.trigger) < mu.shape[1]:
            raise ValueError(f"trigger={self.trigger} is not a feature index in [0, {mu.shape[1]})")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "malicious", malicious)

    @classmethod
    def with_trigger(
        cls,
        *,
        n_clients: int,
        n_malicious: int,
        n_features: int,
        trigger_mu: float,
        rng: np.random.Generator,
        signal: float = 0.5,
        heterogeneity: float = 0.25,
        sigma: float = 1.0,
        sigma_is: str = "std",
        malicious_signal: float = 0.0,
    ) -> GaussianDataModel:
        """Benign features with client-specific means around a shared ``signal``, plus a trigger.

        Non-trigger means are ``signal + heterogeneity * N(0, 1)`` per client and feature (non-iid,
        mostly the same sign). The last feature is the trigger: 0 on the first
        ``n_clients - n_malicious`` clients, ``trigger_mu`` on the malicious ones, whose other
        features are scaled by ``malicious_signal`` (0: the attacker trains on backdoor samples
        only, as the paper's text says).
        """
        if not 0 <= n_malicious <= n_clients or n_clients < 1:
            raise ValueError(f"need 0 <= n_malicious <= n_clients and n_clients >= 1, got {n_malicious}, {n_clients}")
        if n_features < 2:
            raise ValueError("need n_features >= 2: at least one ordinary feature and the trigger")
        if trigger_mu == 0:
            raise ValueError("trigger_mu must be non-zero (the malicious clients' shared trigger mean)")
        mu = signal + heterogeneity * rng.standard_normal((n_clients, n_features))
        trigger = n_features - 1
        malicious = np.arange(n_clients) >= n_clients - n_malicious
        mu[malicious, :trigger] *= malicious_signal
        mu[:, trigger] = np.where(malicious, trigger_mu, 0.0)
        return cls(mu, np.full_like(mu, sigma), sigma_is, malicious, trigger)

    @property
    def variance(self) -> np.ndarray:
        return self.sigma**2 if self.sigma_is == "std" else self.sigma

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def n_clients(self) -> int:
        return self.mu.shape[0]

    @property
    def n_features(self) -> int:
        return self.mu.shape[1]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples per client: x (clients, n, features), y (clients, n) in {0, 1}."""
        y = rng.integers(0, 2, size=(self.n_clients, n))
        mean = (2 * y - 1)[..., None] * self.mu[:, None, :]
        return mean + self.std[:, None, :] * rng.standard_normal(mean.shape), y

    def accuracy(self, w) -> np.ndarray:
        """Exact accuracy of the rule y_hat = 1[w.x >= 0] on each client's distribution.

        By symmetry of the two classes it is Phi(w.mu / sqrt(w' Sigma w)); at w = 0 every sample
        is predicted 1, which is right half of the time. w is (d,) or one row per client.
        """
        return gaussian_accuracy(*score_moments(self.mu, self.variance, w))


def score_moments(mu, variance, w) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the score z = w.x given y = 1, per client (z | y=0 is -(z | y=1)).

    mu, variance: (clients, d); w: (d,) or (clients, d).
    """
    w = np.asarray(w, dtype=np.float64)
    return (mu * w).sum(axis=-1), (variance * w * w).sum(axis=-1)


def gaussian_accuracy(mean, var) -> np.ndarray:
    """P(Z >= 0) for Z ~ N(mean, var) — the accuracy of y_hat = 1[z >= 0] on balanced classes
    whose scores are +-Z — with the degenerate var = 0 case (0, 1/2 or 1 by the sign of mean)."""
    mean, var = np.broadcast_arrays(np.asarray(mean, float), np.asarray(var, float))
    out = np.where(mean > 0, 1.0, np.where(mean < 0, 0.0, 0.5))
    pos = var > 0
    return np.where(pos, special.ndtr(np.divide(mean, np.sqrt(var), out=np.zeros_like(mean), where=pos)), out)
