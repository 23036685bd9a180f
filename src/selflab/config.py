"""Configs are pydantic models loaded from YAML; command-line flags override file values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from selflab.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def read_yaml(path: str | Path | None) -> dict[str, Any]:
    """The settings mapping of a YAML config file ({} for no file); a missing file, bad YAML (with
    its line and column) or a non-mapping is a ConfigError that says how to fix it."""
    if path is None:
        return {}
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder", "pass the YAML file inside it to --config")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist", "check the --config path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start})", "save it as UTF-8 YAML"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror or exc}", "check the file's permissions"
        ) from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"config file {path} is not valid YAML{where}",
            "fix the YAML syntax (indentation, colons, quotes)",
        ) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of settings, not {type(loaded).__name__}",
            "write it as key: value lines",
        )
    return loaded


def load_config(model: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """Build `model` from an optional YAML file, then apply non-None `overrides` (CLI flags)."""
    data: dict[str, Any] = read_yaml(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        src = f" in {path}" if path else ""
        raise ConfigError(
            f"invalid settings{src}: {describe_validation_error(exc)}", "correct the values named above"
        ) from exc
