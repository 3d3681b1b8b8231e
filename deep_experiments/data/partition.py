"""Splitting a labelled training set over federated clients."""

from __future__ import annotations

import numpy as np

from ..errors import ExperimentError


def dirichlet_partition(
    labels: np.ndarray, n_clients: int, alpha: float, rng: np.random.Generator, min_size: int = 1
) -> list[np.ndarray]:
    """Per class, split its indices over clients with proportions ~ Dirichlet(alpha).

    Redrawn until every client has at least ``min_size`` samples (the usual practice of
    Hsu et al. 2019 / the edge-case attack's code). Smaller alpha: more label skew.
    """
    if alpha <= 0 or not np.isfinite(alpha):
        raise ExperimentError(f"Dirichlet alpha must be > 0, got {alpha}")
    if n_clients * min_size > len(labels):
        raise ExperimentError(
            f"{len(labels)} training samples cannot give federation.n_clients = {n_clients} clients {min_size} "
            "each; lower federation.n_clients (and federation.clients_per_round) or use a larger table"
        )
    classes = np.unique(labels)
    for _ in range(1000):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, alpha))) * len(idx)).astype(int)[:-1]
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise ExperimentError(
        f"no Dirichlet({alpha}) split of {len(labels)} training samples gave each of federation.n_clients = "
        f"{n_clients} clients {min_size} sample(s) in 1000 draws; raise data.dirichlet_alpha, lower "
        "federation.n_clients, or split IID with data.dirichlet_alpha = 0"
    )


def iid_partition(n: int, n_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    if n < n_clients:
        raise ExperimentError(
            f"{n} training samples cannot be split over federation.n_clients = {n_clients} clients; lower it"
        )
    return [np.sort(p) for p in np.array_split(rng.permutation(n), n_clients)]
