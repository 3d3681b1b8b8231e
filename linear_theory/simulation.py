"""The linear federated simulation (Appendix D.1 is only a pointer in the paper; this is our design).

Design, all of it in the record's evidence:

* Data: the Gaussian model of Eq. 6 (sigma = std, 1) with 10 ordinary features and one trigger.
  Ordinary means are 0.3 + 0.25 N(0, 1) per client and feature (non-iid, mostly positive). The
  trigger has mu = 0 on the benign clients and mu = 2 on the N' malicious ones, whose ordinary
  features carry no signal (they train on backdoor samples only, as the paper's text says).
* Federation: N = 20 clients every round, N' = 4 of them malicious (the theory's fixed-N'
  setting); each runs 5 local SGD steps (batch 32, fresh samples, lr 0.5) on the logistic loss
  (the sympy-derived gradient) from the global w and reports g_i = w - w_local. The server
  applies w <- w - aggregate, the aggregate coming from the shared core.
* Rules: FedAvg, trimmed mean (alpha = 0.2), AND-mask alone and the invariant aggregator
  (alpha = 0.2) at tau in {0.2, 0.4, 0.6, 0.8}.
* Starts: clean (w = 0) and backdoored (the w that FedAvg reaches from the clean start after the
  same number of rounds, so w_k mu_k > 0). Each seed draws its own clients; all rules see the
  same data stream for a given seed (common random numbers), so differences are paired.
* Metrics each round (exact, from Gaussian CDFs): w_k; benign accuracy, averaged over benign
  clients; backdoor accuracy: the share of benign test samples predicted as the other class
  when the trigger takes the malicious clients' value of that class (x_k = -/+ 2). It includes
  the clean error rate on such samples, so even a model with w_k = 0 scores its error rate.

Checked: the paper's "AND-mask can prevent the adversary from exploiting w_k" (clean start:
final w_k under the rule significantly below FedAvg's, paired over seeds) for the rules with a
mask, and "the trimmed-mean estimator helps shrink w_k" (backdoored start: final w_k
significantly below the starting w_k) for the rules with a trimmed mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import invariant_aggregator as ia

from .gradients import per_sample_gradient
from .model import GaussianDataModel, gaussian_accuracy, score_moments
from .records import Estimate, Record, judge_difference_positive

CLAIM = "simulation_d1"


@dataclass(frozen=True)
class SimulationConfig:
    n_clients: int = 20
    n_malicious: int = 4
    n_features: int = 11  # the last one is the trigger
    signal: float = 0.3
    heterogeneity: float = 0.25
    trigger_mu: float = 2.0
    sigma: float = 1.0
    local_steps: int = 5
    batch: int = 32
    local_lr: float = 0.5
    rounds: int = 100
    seeds: int = 10
    alpha: float = 0.2
    taus: tuple = (0.2, 0.4, 0.6, 0.8)

    def rules(self) -> dict[str, ia.AggregationRule]:
        out = {
            "fedavg": ia.make("fedavg"),
            f"trimmed_mean(alpha={self.alpha})": ia.make("trimmed_mean", alpha=self.alpha),
        }
        for tau in self.taus:
            out[f"and_mask(tau={tau})"] = ia.make("and_mask", tau=tau)
            out[f"invariant(tau={tau}, alpha={self.alpha})"] = ia.make("invariant", tau=tau, alpha=self.alpha)
        return out


def population(cfg: SimulationConfig, rng: np.random.Generator) -> GaussianDataModel:
    """One Eq. 6 model per seed, stacked: client ``s * n_clients + i`` is client i of seed s."""
    models = [
        GaussianDataModel.with_trigger(
            n_clients=cfg.n_clients,
            n_malicious=cfg.n_malicious,
            n_features=cfg.n_features,
            trigger_mu=cfg.trigger_mu,
            rng=rng,
            signal=cfg.signal,
            heterogeneity=cfg.heterogeneity,
            sigma=cfg.sigma,
        )
        for _ in range(cfg.seeds)
    ]
    return GaussianDataModel(
        np.concatenate([m.mu for m in models]),
        cfg.sigma,
        "std",
        np.concatenate([m.malicious for m in models]),
        models[0].trigger,
    )


def metrics(cfg: SimulationConfig, model: GaussianDataModel, w: np.ndarray) -> dict[str, np.ndarray]:
    """Exact per-seed metrics for weights w (seeds, d)."""
    rows = np.repeat(w, cfg.n_clients, axis=0)  # each client row gets its seed's weights
    benign = ~model.malicious.reshape(cfg.seeds, cfg.n_clients)
    accuracy = model.accuracy(rows).reshape(cfg.seeds, cfg.n_clients)
    # Backdoor: a benign client's class-1 sample with the trigger set to -trigger_mu (the malicious
    # clients' class 0) is predicted 0 with P(w_k trigger_mu - w_o.x_o >= 0); class 0 is symmetric.
    ordinary = w.copy()
    ordinary[:, -1] = 0.0
    mean, var = score_moments(model.mu, model.variance, np.repeat(ordinary, cfg.n_clients, axis=0))
    flipped = gaussian_accuracy(np.repeat(w[:, -1], cfg.n_clients) * cfg.trigger_mu - mean, var)
    flipped = flipped.reshape(cfg.seeds, cfg.n_clients)
    return {
        "w_k": w[:, -1].copy(),
        "benign_accuracy": np.where(benign, accuracy, 0).sum(axis=1) / benign.sum(axis=1),
        "backdoor_accuracy": np.where(benign, flipped, 0).sum(axis=1) / benign.sum(axis=1),
    }


def run(cfg: SimulationConfig, rule, model: GaussianDataModel, w0, data_seed: int):
    """Trajectories (rounds + 1, seeds) of every metric and whether the trigger moved; final w."""
    rng = np.random.default_rng(data_seed)
    seeds, clients, d = cfg.seeds, cfg.n_clients, cfg.n_features
    w = w0.copy()
    history = {k: [v] for k, v in metrics(cfg, model, w).items()}
    trigger_kept = []
    for _ in range(cfg.rounds):
        local = np.repeat(w, clients, axis=0)  # (seeds * clients, d)
        for _ in range(cfg.local_steps):
            x, y = model.sample(rng, cfg.batch)
            local -= cfg.local_lr * per_sample_gradient(x, y, local).mean(axis=1)
        updates = (np.repeat(w, clients, axis=0) - local).reshape(seeds, clients, d)  # g_i = w_global - w_local
        aggregate = np.asarray(rule(updates.transpose(1, 0, 2).reshape(clients, seeds * d))).reshape(seeds, d)
        trigger_kept.append(aggregate[:, -1] != 0)
        w = w - aggregate
        for k, v in metrics(cfg, model, w).items():
            history[k].append(v)
    out = {k: np.array(v) for k, v in history.items()}
    out["trigger_update_nonzero"] = np.array(trigger_kept)
    return out, w


def _summary(traj: dict[str, np.ndarray], every: int) -> dict:
    """Seed-mean trajectories every ``every`` rounds, and the final per-seed values."""
    out = {k: v.mean(axis=1)[::every] for k, v in traj.items() if k != "trigger_update_nonzero"}
    out["rounds"] = np.arange(traj["w_k"].shape[0])[::every]
    out["final"] = {k: v[-1] for k, v in traj.items() if k != "trigger_update_nonzero"}
    out["trigger_update_nonzero_rate"] = float(traj["trigger_update_nonzero"].mean())
    return out


def check(*, seed: int, cfg: SimulationConfig | None = None, every: int = 5) -> list[Record]:
    cfg = cfg or SimulationConfig()
    rng = np.random.default_rng(seed)
    model = population(cfg, rng)
    rules = cfg.rules()
    clean = np.zeros((cfg.seeds, cfg.n_features))
    data_seed = int(rng.integers(2**63))
    runs = {name: run(cfg, rule, model, clean, data_seed) for name, rule in rules.items()}
    backdoored = runs["fedavg"][1]
    results = {
        "clean": {name: r[0] for name, r in runs.items()},
        "backdoored": {name: run(cfg, rule, model, backdoored, data_seed + 1)[0] for name, rule in rules.items()},
    }
    design = {
        **asdict(cfg),
        "trigger_index": cfg.n_features - 1,
        "sigma_is": "std",
        "server_lr": 1.0,
        "pseudo_gradient": "w_global - w_local",
        "seed": seed,
        "backdoored_start_w_k": backdoored[:, -1],
    }
    summaries = {start: {name: _summary(t, every) for name, t in res.items()} for start, res in results.items()}
    records = []
    fed_clean = results["clean"]["fedavg"]["w_k"][-1]
    for name in rules:
        if name == "fedavg":
            continue
        evidence = {
            "design": design,
            "trajectories": {s: {name: summaries[s][name], "fedavg": summaries[s]["fedavg"]} for s in summaries},
        }
        if "and_mask" in name or "invariant" in name:
            final = results["clean"][name]["w_k"][-1]
            diff = Estimate.mean(fed_clean - final)
            verdict, reason = judge_difference_positive(diff, what="w_k(FedAvg) - w_k(rule) after the clean start")
            records.append(
                Record(
                    CLAIM,
                    "clean start: the AND-mask keeps w_k below FedAvg's",
                    name,
                    verdict,
                    reason,
                    {**evidence, "difference": diff},
                )
            )
        if "trimmed_mean" in name or "invariant" in name:
            final = results["backdoored"][name]["w_k"][-1]
            diff = Estimate.mean(backdoored[:, -1] - final)
            verdict, reason = judge_difference_positive(diff, what="w_k(start) - w_k(final) after the backdoored start")
            records.append(
                Record(
                    CLAIM,
                    "backdoored start: the trimmed mean shrinks w_k",
                    name,
                    verdict,
                    reason,
                    {**evidence, "difference": diff},
                )
            )
    return records
