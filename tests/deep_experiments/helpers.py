from deep_experiments import load_config, run_config
from deep_experiments.cli import main
from deep_experiments.config import parse_assignment

TINY_PHISHING = [
    "federation.n_clients=10",
    "federation.clients_per_round=5",
    "federation.rounds=4",
    "federation.eval_every=2",
    "data.samples_per_client=40",
    "data.n_test=200",
    "runtime.progress=false",
]


def config(task="phishing", defence="fedavg", seed=0, sets=(), params=(), data=None, scale="small"):
    """A run's configuration through the programmatic entry points (what the CLI calls)."""
    base = load_config(task, scale, overrides=list(sets))
    return run_config(base, defence, seed=seed, params=dict(parse_assignment(p, "--param") for p in params), data=data)


__all__ = ["TINY_PHISHING", "config", "main"]
