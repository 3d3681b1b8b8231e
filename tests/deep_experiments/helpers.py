from deep_experiments.cli import main, parser, run_config

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
    argv = ["run", task, "--defence", defence, "--out", "unused", "--scale", scale]
    for s in sets:
        argv += ["--set", s]
    for p in params:
        argv += ["--param", p]
    if data:
        argv += ["--data", str(data)]
    return run_config(parser().parse_args(argv), task, defence, seed)


__all__ = ["TINY_PHISHING", "config", "main"]
