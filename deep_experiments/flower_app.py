"""An example Flower app: a tabular task's federated run, with edge-case attacker clients, served by
Flower (ServerApp + ClientApp) and aggregated by :class:`invariant_aggregator.flower.AggregatorStrategy`.

What runs where:

* the **ServerApp** builds the task's model exactly as :class:`deep_experiments.engine.Run` does
  (same seed, same initial weights), hands it to an ``AggregatorStrategy`` with the run's rule,
  server learning rate and buffer policy, lets Flower sample ``clients_per_round`` of the
  ``n_clients`` SuperNodes each round, and evaluates the global model on the server every round:
  Acc_M on the clean test set, Acc_B on the backdoor test set (:func:`deep_experiments.engine.evaluate`);
* each **ClientApp** is the client of ``context.node_config["partition-id"]``: it trains the
  partition that the engine gives that client id (same data split), with the same seeded
  generator for round r (seed, 4, r, client), as a malicious client when the engine's draw makes
  it one (seed, 2), and sends back its model, ``num-examples`` and its id as ``client-id``.

So the two differ in one thing only: *which* clients a round samples. Flower samples its node ids
with Python's ``random`` (seeded here with the run's seed, but Flower's simulation assigns the
node ids), the engine with numpy. The results agree within seed noise, not bit for bit
(``benchmarks/flower_agreement.py`` measures it).

The attack must be one a client can carry out alone: poisoning, model replacement, PGD, sign
flip, Gaussian noise. Attacks that need the round's other updates (ALIE, IPM, the mask-aware
attacker), the attackers' clean twins or the last global update (Neurotoxin) are refused.

Run it (CPU, Flower's simulation engine on a private local Ray instance)::

    python -m deep_experiments flower spambase --defence invariant --seed 0 --out runs/flower-sp

which writes ``OUT/summary.json`` (Acc_M / Acc_B of the last round and the last 10 % of rounds,
the configuration, ``"engine": "flower"``) and ``OUT/records.json`` (one record per round).
"""

from __future__ import annotations

import logging
import os
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

import invariant_aggregator as ia

from . import results
from .attacks import Attack, ClientContext, build_attack
from .config import fingerprint
from .defences import build_rule
from .engine import evaluate, last_window_means, local_train, malicious_clients, seed_of
from .errors import ExperimentError
from .tasks import MODALITY, build_task

# Flower reads its telemetry switch once, when it is first imported: off unless the caller set it
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

try:
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

    from invariant_aggregator.flower import AggregatorStrategy, buffer_names
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "deep_experiments.flower_app needs Flower's simulation engine: "
        "pip install 'invariant-aggregator[flower]' (flwr[simulation])"
    ) from exc

__all__ = ["check_flower_config", "make_apps", "run_flower"]

ENGINE = "flower"


def check_flower_config(cfg: dict) -> None:
    """Refuse, before anything starts, what this example cannot run faithfully."""
    task = cfg["task"]
    if MODALITY[task] != "tabular":
        raise ExperimentError(
            f"the Flower example runs the tabular tasks (spambase, phishing), not {task!r}; "
            "use python -m deep_experiments run for it"
        )
    if cfg["federation"]["freeze_to_last_layer"]:
        raise ExperimentError("the Flower example does not freeze layers (freeze_layers); use deep_experiments run")
    attack = build_attack(cfg["attack"])
    for part in attack.parts:
        needs_round = type(part).shape_round is not Attack.shape_round or type(part).observe is not Attack.observe
        if needs_round or part.needs_clean_updates or part.needs_last_update:
            raise ExperimentError(
                f"the Flower example runs attacks a client carries out alone; {type(part).__name__} needs the "
                "round's other updates or the server's last step (attack.evasion = 'none', and attack.kind "
                "one of edge_case, pixel_pattern, sign_flip, gaussian)"
            )


_CLIENT_SIDE: dict[str, dict] = {}


def _client_side(cfg: dict) -> dict:
    """A client process's copy of the run (:func:`_build`), built once per configuration (module
    level, so that Flower's worker processes keep it between messages)."""
    fp = fingerprint(cfg)
    if fp not in _CLIENT_SIDE:
        _CLIENT_SIDE.clear()
        _CLIENT_SIDE[fp] = _build(cfg)
    return _CLIENT_SIDE[fp]


def _build(cfg: dict) -> dict:
    """The task, initial model, layout, attack and malicious clients (with their ranks), made as
    :class:`deep_experiments.engine.Run` makes them: the same seed gives the same of each."""
    seed = cfg["seed"]
    attack = build_attack(cfg["attack"])
    torch.manual_seed(seed_of(seed, 0))
    task = build_task(cfg, seed, attack)
    model = task.make_model()
    malicious = malicious_clients(seed, cfg["federation"]["malicious_fraction"], len(task.clients))
    return {
        "task": task,
        "model": model,
        "layout": ia.ParameterLayout.of(model),
        "attack": attack,
        "malicious": malicious,
        "rank": {c: k for k, c in enumerate(malicious)},
    }


def _train_client(cfg: dict, msg: Message, context: Context) -> Message:
    side = _client_side(cfg)
    torch.set_num_threads(1)  # a Flower worker process of this app's own: small MLPs train fastest on one
    client = int(context.node_config["partition-id"])
    r = int(msg.content["config"]["server-round"])
    model, layout, attack, task = side["model"], side["layout"], side["attack"], side["task"]
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    anchor = layout.flatten(model).clone()
    bad = client in side["rank"] and attack.schedule.active(r)
    ctx = ClientContext(r, client, layout, anchor, side["rank"].get(client, 0), cfg["seed"]) if bad else None
    generator = torch.Generator().manual_seed(seed_of(cfg["seed"], 4, r, client))
    indices = task.clients[client]
    local_train(
        model, task, indices, cfg, generator, device=torch.device("cpu"), attack=attack if bad else None, ctx=ctx
    )
    if bad:
        update = anchor - layout.flatten(model)
        shaped = attack.shape_update(update, ctx)
        if shaped is not update:  # the server computes g = w_broadcast - w_client: send w = anchor - shaped
            layout.assign(model, anchor - shaped)
    metrics = MetricRecord({"num-examples": len(indices), "client-id": client, "malicious": int(bad)})
    return Message(content=RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)


def make_apps(cfg: dict, out, *, progress: bool = False) -> tuple[ServerApp, ClientApp]:
    """The ServerApp and ClientApp of one run of ``cfg`` (from :func:`deep_experiments.run_config`);
    the ServerApp writes the run's records and summary into ``out`` (``progress``: a bar of
    rounds with the current Acc_M / Acc_B)."""
    check_flower_config(cfg)
    out = Path(out)
    server, client = ServerApp(), ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        return _train_client(cfg, msg, context)

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        _serve(cfg, grid, out, progress)

    return server, client


def _serve(cfg: dict, grid: Grid, out: Path, progress: bool) -> None:
    fed, seed = cfg["federation"], cfg["seed"]
    random.seed(seed)  # Flower samples nodes with Python's random
    run = _build(cfg)
    task, model = run["task"], run["model"]
    device = torch.device("cpu")
    n_clients = len(task.clients)
    strategy = AggregatorStrategy(
        build_rule(cfg["defence"]),
        server_lr=fed["server_lr"],
        buffers=fed["buffers"],
        buffer_keys=buffer_names(model),
        fraction_train=fed["clients_per_round"] / n_clients,
        min_train_nodes=fed["clients_per_round"],
        fraction_evaluate=0.0,
        min_available_nodes=n_clients,
    )
    records: list[dict] = []
    start = time.perf_counter()
    desc = f"flower/{cfg['task']}/{cfg['defence']['name']}/seed {seed}"
    bar = tqdm(total=fed["rounds"], unit="round", disable=not progress, desc=desc)

    def server_evaluation(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        metrics = evaluate(model, task, cfg, device)
        if server_round > 0:
            records.append({"round": server_round, **metrics, "seconds": time.perf_counter() - start})
            bar.set_postfix(acc_m=f"{metrics['acc_m']:.3f}", acc_b=f"{metrics['acc_b']:.3f}", refresh=False)
            bar.update(1)
        return MetricRecord(metrics)

    with bar:
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=fed["rounds"],
            train_config=ConfigRecord({"seed": seed}),
            evaluate_fn=server_evaluation,
        )
    if len(records) != fed["rounds"]:
        raise ExperimentError(f"the Flower run ended after {len(records)} of {fed['rounds']} rounds")
    last = records[-1]
    summary = {
        "engine": ENGINE,
        "task": cfg["task"],
        "defence": cfg["defence"]["name"],
        "seed": seed,
        "malicious_clients": run["malicious"],
        "config": cfg,
        "fingerprint": fingerprint(cfg),
        "package_version": ia.__version__,
        "torch": torch.__version__,
        "acc_m": last["acc_m"],
        "acc_b": last["acc_b"],
        "loss": last["loss"],
        **last_window_means(records, fed["rounds"]),
        "rounds": fed["rounds"],
        "seconds": time.perf_counter() - start,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    results.write_records(out, records)
    results.write_summary(out, summary)


def run_flower(
    cfg: dict, out, *, workers: int | None = None, verbose: bool = False, progress: bool | None = None
) -> dict:
    """Run ``cfg`` (from :func:`deep_experiments.run_config`) under Flower's simulation engine, one
    SuperNode per client, and return the summary written to ``out/summary.json``. ``workers``:
    client processes (default: the CPUs available). ``progress``: a bar of rounds (default:
    ``runtime.progress``). Flower's and Ray's telemetry are off unless the caller set them before
    importing this module (or Flower)."""
    check_flower_config(cfg)
    from flwr.simulation import run_simulation

    out = Path(out)
    lock = results.RunFolderLock(out)  # this run owns the folder until it ends
    try:
        results.remove_stale_temporaries(out)
        summary_path = results.run_file(out, results.SUMMARY)
        summary_path.unlink(missing_ok=True)  # a summary here must be this run's
        results.write_description(out, {"engine": ENGINE, "config": cfg, "fingerprint": fingerprint(cfg)})
        workers = workers or len(os.sched_getaffinity(0))
        show = cfg["runtime"]["progress"] if progress is None else progress
        server, client = make_apps(cfg, out, progress=show)
        backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": workers}}
        logging.getLogger("flwr").setLevel(logging.INFO if verbose else logging.WARNING)
        run_simulation(
            server_app=server,
            client_app=client,
            num_supernodes=cfg["federation"]["n_clients"],
            backend_config=backend,
            verbose_logging=verbose,
        )
    finally:
        lock.release()
    if not summary_path.exists():
        raise ExperimentError(f"the Flower simulation ended without a summary in {out}; rerun with verbose=True")
    return results.load_summaries([out])[0]
