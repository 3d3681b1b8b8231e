"""Run configurations: packaged TOML layers, a user's copy, overrides.

Each setting is written once. The packaged layers, in order:

* ``configs/defences.toml`` — every defence's default hyperparameters;
* ``configs/<task>.toml`` — the task at the paper's settings, every setting with a comment
  (and any defence default that differs for this task);
* ``configs/<task>-<scale>.toml`` — only what the scale changes, with why.

:func:`render` prints the resolved layers as one commented file (``python -m deep_experiments
config TASK --scale S``); a user copies it, edits it and passes ``--config FILE``; overrides
(``--set section.key=value``) change single values. Keys and types are checked against the
packaged configuration of the same task and scale, so a typo is an error, not a silently
ignored setting.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ImportError:  # pragma: no cover - python 3.10
    import tomli as tomllib


from .errors import ExperimentError
from .tasks import TASKS

SCALES = ("small", "small-literal", "paper")  # small-literal: the tabular tasks only


def _configs() -> Path:
    return Path(str(resources.files(__package__) / "configs"))


def packaged_layers(task: str, scale: str) -> list[Path]:
    """The packaged files of a task at a scale, in the order they apply."""
    if task not in TASKS:
        raise ExperimentError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if scale not in SCALES:
        raise ExperimentError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    layer = _configs() / f"{task}-{scale}.toml"
    if not layer.is_file():
        have = sorted(s for s in SCALES if (_configs() / f"{task}-{s}.toml").is_file())
        raise ExperimentError(f"the {task} task has no scale {scale!r}; its scales: {', '.join(have)}")
    return [_configs() / "defences.toml", _configs() / f"{task}.toml", layer]


@functools.cache
def _packaged_layers_merged(task: str, scale: str) -> dict:
    cfg: dict = {}
    for path in packaged_layers(task, scale):
        cfg = _merge(cfg, _load(path))
    return cfg


def packaged(task: str, scale: str = "small") -> dict:
    """The packaged configuration of a task at a scale (the layers merged, nothing else); the
    files are read once per process, each caller gets its own copy."""
    return copy.deepcopy(_packaged_layers_merged(task, scale))


def _load(path) -> dict:
    path = Path(path).expanduser()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(f"configuration file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: not valid TOML ({exc})") from None


def parse_value(text: str):
    """A TOML literal (``0.4``, ``true``, ``[64, 32]``, ``"x"``), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str, flag: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> (NAME, the parsed VALUE)."""
    if "=" not in text:
        raise ExperimentError(f"{flag} needs NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), parse_value(value.strip())


def _check_against(schema: dict, given: dict, where: str) -> None:
    for key, value in given.items():
        path = f"{where}{key}"
        if key not in schema:
            raise ExperimentError(f"unknown setting {path!r}; known here: {', '.join(sorted(schema))}")
        ref = schema[key]
        if isinstance(ref, dict):
            if not isinstance(value, dict):
                raise ExperimentError(f"setting {path!r} is a table of settings, got {value!r}")
            _check_against(ref, value, path + ".")
        elif isinstance(ref, bool) or isinstance(value, bool):
            if type(ref) is not type(value):
                raise ExperimentError(f"setting {path!r} must be a {type(ref).__name__}, got {value!r}")
        elif isinstance(ref, float) and isinstance(value, int):
            continue
        elif not isinstance(value, type(ref)):
            raise ExperimentError(f"setting {path!r} must be a {type(ref).__name__} (like {ref!r}), got {value!r}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def set_value(cfg: dict, path: str, value) -> None:
    """Set the dotted setting ``path`` (``section.key``) to ``value`` in place."""
    keys = path.split(".")
    node = cfg
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ExperimentError(f"setting {path!r}: {key!r} is a value, not a section")
    node[keys[-1]] = value


def set_dotted(cfg: dict, assignment: str) -> None:
    """Apply ``section.key=value`` (a TOML literal) in place."""
    path, value = parse_assignment(assignment, "--set")
    set_value(cfg, path, value)


# The range of every numeric setting, beside the schema's types: (lowest, highest), None for
# no bound, a bound in a tuple ``(b,)`` is excluded. Checked before any data is loaded.
RANGES: dict[str, tuple] = {
    "federation.n_clients": (1, None),
    "federation.clients_per_round": (1, None),
    "federation.malicious_fraction": (0, 1),
    "federation.rounds": (1, None),
    "federation.eval_every": (1, None),
    "federation.server_lr": ((0,), None),
    "train.lr": ((0,), None),
    "train.momentum": (0, (1,)),
    "train.weight_decay": (0, None),
    "train.batch_size": (1, None),
    "train.local_epochs": (1, None),
    "train.eval_batch_size": (1, None),
    "attack.target_label": (0, None),
    "attack.backdoor_per_batch": (0, None),
    "attack.scale": ((0,), None),
    "attack.pgd_eps": (0, None),
    "attack.pattern_size": (1, None),
    "attack.alie_z": (0, None),  # 0: Baruch et al.'s z_max
    "attack.neurotoxin_keep": ((0,), 1),
    "attack.adaptive_tau": (0, 1),
    "attack.adaptive_alpha": (0, (0.5,)),
    "attack.noise_std": (0, None),
    "attack.ipm_eps": (0, None),
    "attack.dba_parts": (1, None),
    "attack.start_round": (1, None),
    "attack.end_round": (0, None),  # 0: the last round
    "attack.every": (1, None),
    "runtime.checkpoint_every": (1, None),
    "data.test_fraction": ((0,), (1,)),
    "data.dirichlet_alpha": (0, None),  # 0: an IID split
    "data.samples_per_client": (1, None),
    "data.n_test": (1, None),
    "data.n_features": (1, None),
    "data.trigger_nonzero": (0, 1),
    "data.signal": (0, None),
    "data.heterogeneity": (0, None),
    "data.trigger_feature": (0, None),
    "data.trigger_index_base": (0, 1),
    "data.max_train": (0, None),  # 0: all
    "data.max_test": (0, None),
    "data.embedding_dim": (1, None),
    "data.min_samples_per_user": (1, None),
    "data.max_len": (1, None),
    "model.hidden": (1, None),  # each width, for a list
    "model.layers": (1, None),
    "model.width": (1, None),
}
CLIENT_TRAINING = ("auto", "sequential", "batched")  # runtime.client_training (deep_experiments/batched.py)
CLASSES = {"cifar10": 10, "twitter": 2, "phishing": 2, "spambase": 2}


def _interval(low, high) -> str:
    lo = "(-inf" if low is None else (f"({low[0]}" if isinstance(low, tuple) else f"[{low}")
    hi = "inf)" if high is None else (f"{high[0]})" if isinstance(high, tuple) else f"{high}]")
    return f"{lo}, {hi}"


def _in_range(value, low, high) -> bool:
    if not math.isfinite(value):
        return False
    if low is not None and (value <= low[0] if isinstance(low, tuple) else value < low):
        return False
    return high is None or (value < high[0] if isinstance(high, tuple) else value <= high)


def check_ranges(cfg: dict) -> None:
    """Every numeric setting inside its range (:data:`RANGES`), and the settings that depend on
    each other consistent; one ExperimentError naming the setting, its range and its value."""
    for path, (low, high) in RANGES.items():
        section, key = path.split(".")
        if key not in cfg.get(section, {}):
            continue
        value = cfg[section][key]
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not _in_range(v, low, high):
                raise ExperimentError(f"setting {path!r} must lie in {_interval(low, high)}, got {value!r}")
    training = cfg.get("runtime", {}).get("client_training", "auto")
    if training not in CLIENT_TRAINING:
        raise ExperimentError(
            f"setting 'runtime.client_training' must be 'auto', 'sequential' or 'batched', got {training!r}"
        )
    fed, attack = cfg.get("federation", {}), cfg.get("attack", {})
    _check_attack(attack, fed)
    if fed.get("clients_per_round", 0) > fed.get("n_clients", math.inf):
        raise ExperimentError(
            f"federation.clients_per_round = {fed['clients_per_round']} exceeds federation.n_clients = "
            f"{fed['n_clients']}; sample at most every client"
        )
    classes = CLASSES.get(cfg.get("task"))
    if classes is not None and attack.get("target_label", 0) >= classes:
        raise ExperimentError(
            f"attack.target_label = {attack['target_label']} is not a class of the {cfg['task']} task "
            f"(labels 0..{classes - 1})"
        )
    data = cfg.get("data", {})
    if "n_features" in data and "trigger_feature" in data:
        col = data["trigger_feature"] - data["trigger_index_base"]
        if not 0 <= col < data["n_features"]:
            raise ExperimentError(
                f"data.trigger_feature = {data['trigger_feature']} ({data['trigger_index_base']}-based) is not one "
                f"of the data.n_features = {data['n_features']} columns"
            )


def _check_attack(attack: dict, fed: dict) -> None:
    """The attack's choices (by building it: :func:`attacks.build_attack` checks each) and its
    schedule against the run's rounds."""
    from .attacks import build_attack

    if "kind" in attack:
        build_attack(attack)
    start, end = attack.get("start_round", 1), attack.get("end_round", 0)
    if end and end < start:
        raise ExperimentError(f"attack.end_round = {end} is before attack.start_round = {start}; set end_round >= it")
    if fed.get("malicious_fraction", 0) > 0 and start > fed.get("rounds", math.inf):
        raise ExperimentError(
            f"attack.start_round = {start} is after the last round (federation.rounds = {fed['rounds']}): the "
            f"attackers would never attack; lower it, or set federation.malicious_fraction = 0 for no attack"
        )


def validate(cfg: dict, schema: dict) -> dict:
    """Check every setting's name and type against ``schema`` (a packaged configuration), and
    every numeric setting's range (:func:`check_ranges`)."""
    # [defences.*] may name any hyperparameter of a rule, in any type: the rule validates them
    _check_against(
        {k: v for k, v in schema.items() if k != "defences"}, {k: v for k, v in cfg.items() if k != "defences"}, ""
    )
    for name, params in cfg.get("defences", {}).items():
        if not isinstance(params, dict):
            raise ExperimentError(f"defences.{name} must be a table of the rule's hyperparameters")
    check_ranges(cfg)
    return cfg


def _apply(cfg: dict, overrides) -> dict:
    """``cfg`` with dotted overrides applied in place: a mapping ``{"federation.rounds": 5}`` of
    values, or an iterable of ``"section.key=value"`` strings (TOML literals)."""
    if isinstance(overrides, Mapping):
        for path, value in overrides.items():
            set_value(cfg, path, value)
    else:
        for assignment in overrides or ():
            set_dotted(cfg, assignment)
    return cfg


def with_overrides(cfg: dict, overrides) -> dict:
    """A validated copy of ``cfg`` with dotted overrides applied (see :func:`_apply`)."""
    out = _apply(copy.deepcopy(cfg), overrides)
    return validate(out, _packaged_layers_merged(out["task"], out["scale"]))


def resolve(task: str, scale: str = "small", config_file=None, overrides=()) -> dict:
    """The full configuration of a run: packaged layers <- user file <- overrides, validated once."""
    cfg = packaged(task, scale)
    if config_file:
        user = _load(config_file)
        if user.get("task", task) != task:
            raise ExperimentError(f"{config_file} is a configuration for task {user['task']!r}, not {task!r}")
        cfg = _merge(cfg, user)
    return validate(_apply(cfg, overrides), _packaged_layers_merged(task, scale))


def load_config(task: str, scale: str = "small", *, config_file=None, overrides=None) -> dict:
    """The resolved, validated configuration of ``task`` at ``scale``: the packaged layers, then
    ``config_file`` (a user's copy of ``python -m deep_experiments config TASK``), then
    ``overrides``, a mapping of dotted settings such as ``{"federation.rounds": 5}``.

    >>> cfg = load_config("phishing", overrides={"federation.rounds": 5})
    >>> cfg["federation"]["rounds"], cfg["scale"]
    (5, 'small')
    """
    return resolve(task, scale, config_file, overrides or {})


# --------------------------------------------------------------------------- the commented file
def _comment_blocks(path: Path) -> dict[str, list[str]]:
    """Comment lines above each group of settings, keyed by every dotted setting of the group
    (a group: consecutive ``key = value`` lines under one comment) and by table names."""
    blocks: dict[str, list[str]] = {}
    table, pending, group, first = "", [], None, True
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped and first and pending:
            blocks[""] = pending  # the file's own header comment
        first = first and (not stripped or stripped.startswith("#"))
        if stripped.startswith("#"):
            pending.append(stripped)
            group = None
        elif stripped.startswith("["):
            table = stripped.strip("[]").strip()
            if pending:
                blocks[table] = pending
            pending, group = [], None
        elif "=" in stripped:
            key = f"{table}.{stripped.split('=', 1)[0].strip()}".lstrip(".")
            if pending:
                group, pending = pending, []
            if group is not None:
                blocks[key] = group
        else:
            pending, group = [], None
    return blocks


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ExperimentError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def render(task: str, scale: str = "small") -> str:
    """The packaged configuration of ``task`` at ``scale`` as one TOML file, every setting with
    its comment (the task's, then the scale's reason for changing it). It loads back to
    :func:`packaged` exactly and can be passed as ``--config``."""
    layers = packaged_layers(task, scale)
    comments = [_comment_blocks(p) for p in layers]
    cfg = packaged(task, scale)
    names = ", ".join(f"configs/{p.name}" for p in layers)
    out = [
        f"# {task} at scale {scale!r}: the packaged settings resolved from {names}.",
        "# Copy, edit and pass as --config FILE; --set section.key=value overrides one setting.",
        "",
    ]
    shown: set[int] = set()

    def emit_comment(key: str):
        for block in comments:
            lines = block.get(key)
            if lines is not None and id(lines) not in shown:
                shown.add(id(lines))
                out.extend(lines)

    def emit_table(name: str, table: dict):
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if name:
            out.append("")
            emit_comment(name)
            if scalars or not table:
                out.append(f"[{name}]")
        for key, value in scalars.items():
            emit_comment(f"{name}.{key}".lstrip("."))
            out.append(f"{key} = {_toml_value(value)}")
        for key, value in table.items():
            if isinstance(value, dict):
                emit_table(f"{name}.{key}".lstrip("."), value)

    emit_table("", {k: cfg[k] for k in ("task", "scale")})
    emit_table("", {k: v for k, v in cfg.items() if k not in ("task", "scale", "defences")})
    out.append("")
    for block in comments:
        if "" in block and "defences" in cfg and id(block[""]) not in shown:
            shown.add(id(block[""]))
            if any(k.startswith("defences.") for k in block):
                out.extend(block[""])
    emit_table("defences", cfg["defences"])
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def uncommented_settings(task: str, scale: str = "small") -> list[str]:
    """Dotted settings of the packaged configuration that no layer comments, neither the setting
    (or its group) nor its table (should be none)."""
    comments = [_comment_blocks(p) for p in packaged_layers(task, scale)]

    def walk(table: dict, prefix: str):
        for key, value in table.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                yield from walk(value, path + ".")
            elif not any(path in c or prefix.rstrip(".") in c for c in comments):  # its own, or its table's
                yield path

    return list(walk(packaged(task, scale), ""))


def fingerprint(cfg: dict) -> str:
    """A short hash of everything that determines a run's results (the runtime section aside)."""
    relevant = {k: v for k, v in cfg.items() if k != "runtime"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
