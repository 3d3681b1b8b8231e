"""Run configurations: packaged TOML files per task and scale, a user's copy, overrides.

``configs/<task>-<scale>.toml`` holds every setting with a comment. A user copies one, edits
it and passes ``--config FILE``; ``--set section.key=value`` overrides single values. Keys
and types are checked against the packaged file of the same task, so a typo is an error,
not a silently ignored setting.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ImportError:  # pragma: no cover - python 3.10
    import tomli as tomllib


from .errors import ExperimentError
from .tasks import TASKS

SCALES = ("small", "paper")


def packaged_path(task: str, scale: str) -> Path:
    if task not in TASKS:
        raise ExperimentError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if scale not in SCALES:
        raise ExperimentError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return Path(str(resources.files(__package__) / "configs" / f"{task}-{scale}.toml"))


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


def set_dotted(cfg: dict, assignment: str) -> None:
    """Apply ``section.key=value`` in place."""
    path, value = parse_assignment(assignment, "--set")
    keys = path.split(".")
    node = cfg
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ExperimentError(f"--set {assignment!r}: {key!r} is a value, not a section")
    node[keys[-1]] = value


def resolve(task: str, scale: str = "small", config_file=None, overrides=()) -> dict:
    """The full configuration of a run: packaged defaults <- user file <- ``--set`` overrides."""
    schema = _load(packaged_path(task, scale))
    cfg = copy.deepcopy(schema)
    if config_file:
        user = _load(config_file)
        if user.get("task", task) != task:
            raise ExperimentError(f"{config_file} is a configuration for task {user['task']!r}, not {task!r}")
        cfg = _merge(cfg, user)
    for assignment in overrides:
        set_dotted(cfg, assignment)
    # [defences.*] may name any hyperparameter of a rule, in any type: the rule validates them
    _check_against(
        {k: v for k, v in schema.items() if k != "defences"}, {k: v for k, v in cfg.items() if k != "defences"}, ""
    )
    for name, params in cfg.get("defences", {}).items():
        if not isinstance(params, dict):
            raise ExperimentError(f"defences.{name} must be a table of the rule's hyperparameters")
    return cfg


def fingerprint(cfg: dict) -> str:
    """A short hash of everything that determines a run's results (the runtime section aside)."""
    relevant = {k: v for k, v in cfg.items() if k != "runtime"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
