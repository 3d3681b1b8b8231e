"""Speed and memory of the aggregation core, as ratios measured in one run.

    python benchmarks/bench_aggregators.py                  # full: d = 11,173,962, N = 10, 20, 50
    python benchmarks/bench_aggregators.py --d 1000000 --n 20 --repeats 3   # quick look

Time ratios are against one read of the same input, ``torch.sum(updates, 0)``: every timing of
a rule is paired with a read timed just before it, and the ratio reported is the median over
the repeats of each pair's ratio, so machine load affects both sides alike.
Baselines (optional, in the benchmark's environment only): Flower's ``aggregate_trimmed_avg``
(``pip install flwr``) and ByzFL's ``TrMean`` (``pip install --no-deps byzfl``: it declares
torchvision, which only its training code uses). Peak extra memory is measured in a child
process as the rise of peak RSS (VmHWM, reset through /proc/self/clear_refs) over the input.
Compile time of the numba kernels is reported apart and excluded from the timings.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

import invariant_aggregator as ia

RESNET18_PARAMETERS = 11_173_962


def flower_trimmed_mean():
    try:
        from flwr.server.strategy.aggregate import aggregate_trimmed_avg
    except ImportError:
        return None

    def run(x: np.ndarray, cut: float):
        # Flower's strategy receives one list of arrays per client; this is its own path
        return aggregate_trimmed_avg([([row], 1) for row in x], cut)[0]

    return run


def byzfl_trmean():
    spec = importlib.util.find_spec("byzfl")
    if spec is None:
        return None
    # byzfl/__init__ imports its training benchmark (torchvision); load only the aggregators
    root = Path(spec.submodule_search_locations[0])
    package = types.ModuleType("byzfl")
    package.__path__ = [str(root)]
    sys.modules.setdefault("byzfl", package)
    from byzfl.aggregators.aggregators import TrMean

    return TrMean


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def measure(ops: dict, x: torch.Tensor, repeats: int, sync) -> tuple[dict, dict]:
    """(median seconds per op, median ratio per op): every timing of an op is paired with a
    read timed just before it, ``torch.sum(x, 0)``, and the ratio is that pair's, so that the
    machine's state at that moment (load, frequency, caches) weighs on both alike."""
    seconds = {name: [] for name in ["read", *ops]}
    ratios = {name: [] for name in ops}
    for _ in range(repeats):
        for name, fn in ops.items():
            read = timed(lambda: torch.sum(x, 0), sync)
            took = timed(fn, sync)
            seconds["read"].append(read)
            seconds[name].append(took)
            ratios[name].append(took / read)
    median = {name: statistics.median(ts) for name, ts in seconds.items()}
    return median, {name: statistics.median(rs) for name, rs in ratios.items()}


def peak_extra_memory(n: int, d: int) -> dict:
    """Run in a child: peak RSS rise of the invariant aggregator over its input."""
    code = f"""
import json, numpy as np, torch, invariant_aggregator as ia
from invariant_aggregator import functional as F
rule = ia.make("invariant", tau=0.6, alpha=0.2)
rule(np.random.default_rng(0).normal(size=({n}, F.SPECIALISE_MIN_COORDINATES)).astype(np.float32))  # compile
x = torch.randn({n}, {d}).numpy()
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
before = rss("VmRSS:")
out = rule(x)
print(json.dumps({{"input": x.nbytes, "output": out.nbytes, "extra": rss("VmHWM:") - before}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=RESNET18_PARAMETERS)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--rules", nargs="+", help="time only these rules (default: all)")
    parser.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    flower, byzfl = flower_trimmed_mean(), byzfl_trmean()
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, numba threads "
        f"{ia.functional.cpu.thread_count()}, d = {args.d:,}, float32, repeats {args.repeats}"
    )
    print(f"baselines: Flower {'yes' if flower else 'not installed'}, ByzFL {'yes' if byzfl else 'not installed'}")
    records = []
    for n in args.n:
        f = max(1, n // 5)  # the expected number of malicious clients at 20 %
        x = torch.randn(n, args.d, device=device)
        rules = {
            "invariant": ia.make("invariant", tau=0.6, alpha=0.2),
            "trimmed_mean": ia.make("trimmed_mean", alpha=0.2),
            "median": ia.make("median"),
            "krum": ia.make("krum", f=f),
            "multi_krum": ia.make("multi_krum", f=f),
            "rfa_1_iteration": ia.make("rfa", max_iter=1),
            "rfa_default": ia.make("rfa"),
        }
        if args.rules:
            rules = {k: v for k, v in rules.items() if k in args.rules}
        warm = x[:, : min(args.d, 1 << 20)].contiguous()  # same memory layout: same compiled kernels
        t0 = time.perf_counter()
        for rule in rules.values():
            rule(warm)
        compile_s = time.perf_counter() - t0
        ops = {name: functools.partial(rule, x) for name, rule in rules.items()}
        t, ratio = measure(ops, x, args.repeats, sync)
        trim = ia.functional.trim_bounds(n, 0.2)[0]  # the same values trimmed from each side
        base = {}
        if device.type == "cpu":
            extra = {}
            if flower:
                extra["flower_trimmed_avg"] = functools.partial(flower, x.numpy(), 0.2)
            if byzfl:
                extra["byzfl_trmean"] = functools.partial(byzfl(f=trim), x)
            if extra:
                base, base_ratio = measure(extra, x, args.baseline_repeats, sync)
                base.pop("read")
        rec = {"n": n, "d": args.d, "f": f, "device": str(device), "compile_s": compile_s, "seconds": {**t, **base}}
        rec["ratio_to_read"] = ratio
        rec["speedup_of_invariant"] = {k_: v / t["invariant"] for k_, v in base.items()}
        rec["speedup_of_trimmed_mean"] = {k_: v / t["trimmed_mean"] for k_, v in base.items()}
        if device.type == "cpu" and not args.no_memory:
            del x
            mem = peak_extra_memory(n, args.d)
            rec["memory"] = {**mem, "extra_over_input": mem["extra"] / mem["input"]}
        records.append(rec)
        print(f"\nN = {n} (f = {f}); one read = {t['read'] * 1e3:.1f} ms; kernel compile {compile_s:.1f} s")
        print(f"  {'rule':<22}{'ms':>10}{'x one read':>12}")
        for name in rules:
            print(f"  {name:<22}{t[name] * 1e3:>10.1f}{rec['ratio_to_read'][name]:>12.2f}")
        for name, sec in base.items():
            print(
                f"  {name:<22}{sec * 1e3:>10.1f}{base_ratio[name]:>12.2f}   invariant is "
                f"{rec['speedup_of_invariant'][name]:.1f}x faster, our trimmed mean "
                f"{rec['speedup_of_trimmed_mean'][name]:.1f}x"
            )
        if "memory" in rec:
            m = rec["memory"]
            print(
                f"  invariant peak extra memory: {m['extra'] / 2**20:.1f} MiB = {100 * m['extra_over_input']:.1f} % "
                f"of the input ({m['input'] / 2**20:.0f} MiB), of which the output vector is "
                f"{m['output'] / 2**20:.1f} MiB"
            )
    if args.json:
        from invariant_aggregator._io import write_json_atomic

        write_json_atomic(args.json, {"argv": sys.argv, "cpu_count": os.cpu_count(), "records": records})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
