"""Rounds per second, sequential against batched client training, side by side in one run.

For each task two runs of one configuration are built, one per ``runtime.client_training``
path, and stepped in turn (sequential round r, batched round r, sequential round r + 1, ...), so
that both see the same machine load. Each round is split into local training / aggregation /
evaluation; rounds/s counts all three with the configuration's own evaluation interval. The
last columns say whether the two runs' models still agree (max |difference| of the parameters
after the measured rounds: they agree up to rounding, see ``deep_experiments/batched.py``).

CPU, small scale: every task (CIFAR-10 and Twitter on generated files in the real formats;
Spambase needs ``../shared``), and the tabular tasks at paper scale too. With
``--paper-cifar`` (meant for a GPU): CIFAR-10 ResNet-18 at paper scale (20 clients per round,
500 images each, ImageNet layout, width 64) with the peak GPU memory and the projected time of
Table 1's CIFAR-10 column (its rows x 3 seeds x 300 rounds).

    python benchmarks/bench_deep.py                       # CPU, every task
    python benchmarks/bench_deep.py --paper-cifar --device cuda [--amp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from deep_experiments import Run, fixtures, load_config, run_config
from deep_experiments.defences import TABLE1_ROWS
from deep_experiments.engine import PHASES
from deep_experiments.errors import ExperimentError

PATHS = ("sequential", "batched")


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(task, data, sets, rounds, device, scale="small", defence="invariant", warmup=1, paths=PATHS):
    """Median seconds per phase for each path, the two runs stepped in turn."""
    configured = load_config(task, scale)["federation"]
    runs, folders = {}, []
    for path in paths:
        overrides = [
            *sets,
            f"federation.rounds={rounds + warmup}",
            f"federation.eval_every={configured['eval_every']}",
            "runtime.progress=false",
            f"runtime.client_training='{path}'",
        ]
        cfg = run_config(load_config(task, scale, overrides=overrides), defence, seed=0, data=data, device=device)
        folders.append(tempfile.TemporaryDirectory())
        runs[path] = Run(cfg, folders[-1].name)
    times = {p: [] for p in paths}
    try:
        for r in range(rounds + warmup):
            for path, run in runs.items():
                timing = run.step()
                _sync(device)
                if r >= warmup:
                    times[path].append(timing)
    finally:
        for run in runs.values():
            run.close()
        for folder in folders:
            folder.cleanup()
    out = {
        "params": next(iter(runs.values())).layout.numel,
        "clients_per_round": configured["clients_per_round"],
        "configured_rounds": configured["rounds"],
        "configured_eval_every": configured["eval_every"],
    }
    for path, ts in times.items():
        phase = {k: statistics.median(t[k] for t in ts) for k in PHASES}
        # evaluation rounds are a 1/eval_every share: weight their median accordingly
        evaluated = [t["evaluation"] for t in ts if t["evaluation"] > 0]
        phase["evaluation"] = statistics.median(evaluated) if evaluated else 0.0
        per_round = phase["local_train"] + phase["aggregation"] + phase["evaluation"] / configured["eval_every"]
        out[path] = phase | {"seconds_per_round": per_round, "why": runs[path].client_training_why}
    if len(runs) == 2:
        a, b = (run.layout.flatten(run.model) for run in runs.values())
        out["max_abs_difference"] = (a - b).abs().max().item()
        out["agree_exactly"] = bool(torch.equal(a, b))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paper-cifar", action="store_true")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--only", nargs="*", help="measure only these (e.g. spambase-small phishing-paper)")
    ap.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own choice)")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        edge = [f"attack.edge_case_dir='{tmp / 'edge'}'", "attack.verify_edge_case=false"]
        fixtures.write_southwest(tmp / "edge", n_train=784, n_test=196)
        fixtures.write_lanthimos(tmp / "edge", n_train=259, n_test=120)
        amp = ["train.amp=true"] if args.amp else []
        if args.paper_cifar:
            fixtures.write_cifar10(tmp, per_batch=10_000, n_test=10_000)
            plan = {"cifar10-paper": ("cifar10", tmp, [*edge, *amp], "paper", ("batched",))}
        else:
            fixtures.write_cifar10(tmp, per_batch=1000, n_test=1000)
            fixtures.write_sent140(tmp / "leaf", n_users=60, per_user=40, n_test=10)
            fixtures.write_glove(tmp / "glove.txt")
            twitter = [*edge, f"data.glove='{tmp / 'glove.txt'}'"]
            plan = {
                "cifar10-small": ("cifar10", tmp, [*edge, *amp], "small", PATHS),
                "twitter-small": ("twitter", tmp / "leaf", twitter, "small", ("sequential", "auto")),
                "phishing-small": ("phishing", None, [], "small", PATHS),
                "spambase-small": ("spambase", None, [], "small", PATHS),
                "phishing-paper": ("phishing", None, [], "paper", PATHS),
                "spambase-paper": ("spambase", None, [], "paper", PATHS),
            }
        for name, (task, data, sets, scale, paths) in plan.items():
            if args.only and name not in args.only:
                continue
            if args.device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            try:
                results[name] = measure(task, data, sets, args.rounds, args.device, scale, paths=paths)
            except ExperimentError as exc:  # e.g. Spambase without ../shared
                print(f"{name}: not measured: {str(exc).splitlines()[0]}")
                continue
            if args.device.startswith("cuda") and torch.cuda.is_available():
                results[name]["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"{'':>15} {'params':>9} | {'seconds per round (train + aggregate + evaluate/interval)':^44} |")
    print(f"{'task':>15} {'':>9} | {'sequential':>12} {'batched':>12} {'rounds/s ratio':>15} | max |diff|")
    for name, r in results.items():
        seq = r.get("sequential", {}).get("seconds_per_round")
        bat = (r.get("batched") or r.get("auto") or {}).get("seconds_per_round")
        ratio = f"{seq / bat:14.1f}x" if seq and bat else f"{'':>15}"
        diff = f"{r['max_abs_difference']:.1e}" if "max_abs_difference" in r else ""
        print(
            f"{name:>15} {r['params']:>9} | {seq or float('nan'):>12.4f} {bat or float('nan'):>12.4f} {ratio} | {diff}"
        )
    for name, r in results.items():
        for path in ("sequential", "batched", "auto"):
            if path in r:
                print(f"  {name} {path}: {r[path]['why']}")
    if args.paper_cifar and "cifar10-paper" in results:
        r = results["cifar10-paper"]
        per_round = r["batched"]["seconds_per_round"]
        column = per_round * r["configured_rounds"] * len(TABLE1_ROWS) * 3
        memory = r.get("peak_gpu_memory_gib")
        print(
            f"paper-scale CIFAR-10 round: {per_round:.2f} s (target <= 1 s on one H100), peak GPU memory "
            f"{memory if memory is None else f'{memory:.1f} GiB'}; Table 1 CIFAR-10 column "
            f"({len(TABLE1_ROWS)} rows x 3 seeds x {r['configured_rounds']} rounds): {column / 3600:.1f} h"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
