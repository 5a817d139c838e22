"""Where stack configuration comes from: a stack file (CLI, render, tests) or the Pulumi engine.

Both sources produce the same raw mapping of `leanrag:` keys, which `validate_stack` turns into
the one typed `StackConfig`. Secret values never enter that mapping: only the fact that a key
holds an encrypted value does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from infra.config import NAMESPACE, SECRET_KEYS, StackConfig, validate_stack
from infra.errors import ConfigError, ConfigProblem

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = PROJECT_ROOT / "stacks"
_SECRET_MARK = {"secure": True}


class ProjectNotFound(Exception):
    """No project around the working directory (and no --stacks-dir)."""


def find_stacks_dir(start: Path | None = None) -> Path:
    """The stack folder of the project the user stands in: walk up from `start` (the working
    directory) to `Pulumi.yaml`, as Pulumi does, and take its `stackConfigDir`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        project = folder / "Pulumi.yaml"
        if project.is_file():
            settings = yaml.safe_load(project.read_text()) or {}
            return folder / str(settings.get("stackConfigDir") or ".")
    raise ProjectNotFound(
        f"no Pulumi.yaml in {here} or any folder above it: run leanrag inside a Lean RAG "
        "project, or pass --stacks-dir"
    )


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def available_stacks(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in stacks_dir.glob("Pulumi.*.yaml")
    )


def load_stack(stack: str, stacks_dir: Path = STACKS_DIR) -> StackConfig:
    """Read and validate `stacks/Pulumi.<stack>.yaml`."""
    path = stack_file(stack, stacks_dir)
    if not path.is_file():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise ConfigError(
            _display(path),
            [ConfigProblem("--stack", stack, f"no such stack file; known stacks: {known}")],
        )
    return load_stack_file(path)


def load_stack_file(path: Path) -> StackConfig:
    source = _display(path)
    return validate_stack(raw_from_stack_file(path), source)


def raw_from_stack_file(path: Path) -> dict[str, Any]:
    """The `leanrag:` keys of a Pulumi stack file, prefix stripped, secrets reduced to a mark."""
    source = _display(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            source, [ConfigProblem("(file)", "unparseable YAML", f"fix the YAML syntax{where}")]
        ) from None
    config = document.get("config", {}) if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(
            source,
            [
                ConfigProblem(
                    "config",
                    config,
                    "the stack file needs a `config:` mapping of leanrag:<key> entries",
                )
            ],
        )
    raw: dict[str, Any] = {}
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace != NAMESPACE or not name:
            continue  # other providers' keys (kubernetes:context, ...) are not ours to judge
        is_encrypted = isinstance(value, dict) and set(value) == {"secure"}
        raw[name] = dict(_SECRET_MARK) if is_encrypted else value
    return raw


def raw_from_pulumi() -> dict[str, Any]:
    """The `leanrag:` keys as the Pulumi engine hands them to the program."""
    from pulumi.runtime import config as pulumi_config

    every = {**pulumi_config.get_config_env(), **pulumi_config.CONFIG.get()}
    raw: dict[str, Any] = {}
    for key, value in every.items():
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE:
            continue
        if name in SECRET_KEYS and pulumi_config.is_config_secret(key):
            raw[name] = dict(_SECRET_MARK)
            continue
        raw[name] = _decode(value)
    return raw


def load_from_pulumi() -> StackConfig:
    """Validate the running Pulumi stack's configuration (used by `infra/__main__.py`)."""
    import pulumi

    return validate_stack(raw_from_pulumi(), f"stacks/Pulumi.{pulumi.get_stack()}.yaml")


def _decode(value: Any) -> Any:
    # The engine passes every value as a string; objects and lists arrive as JSON text.
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
