"""The options every `selflab` command shares, defined once so they mean the same everywhere.

- `--config FILE`  YAML holding fields of the command's config model;
- `--set KEY=VALUE` one override (nested keys with dots, values parsed as YAML), repeatable;
- `--out DIR`      the run directory (default `runs/<command>-<time>`);
- `--resume`       continue the run in `--out`; what is recorded is kept, nothing is duplicated;
- `--model SPEC`   the model: smollm2-135m, hf:/path, openai:MODEL@URL;
- `--seed N`       the seed of every random choice.

Precedence: config file < `--set` < explicit flags. Help texts for a field come from the config
model (`field_help`), so the flag and the YAML key are documented by the same sentence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from selflab.errors import ConfigError

C = TypeVar("C", bound=BaseModel)

MODEL_HELP = "Model spec: smollm2-135m (embedded), hf:/path/to/folder, openai:MODEL@http://HOST:PORT/v1."

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file with the command's settings.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override one setting: key=value (a.b=1 for nested; YAML values). Repeatable."
    ),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<command>-<time>).")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue the run in --out; what is recorded is kept, not redone.")
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random choice (same seed, same result).")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show third-party logs, warnings and progress bars.")
]


def parse_sets(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """`["train.epochs=3", "iterations=1"]` -> `{"train": {"epochs": 3}, "iterations": 1}`."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE", f"write it like {flag} seed=1")
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"{flag} {item!r} has an empty key", f"write it like {flag} seed=1")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[parts[-1]] = value
    return out


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`b` over `a`, recursively for nested mappings."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist", "check the --config path")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML", "fix the YAML syntax") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping", "write it as key: value lines")
    return loaded


def build_config(cls: type[C], config: Path | None = None, sets: list[str] | None = None, **flags: Any) -> C:
    """The command's config: YAML file, then `--set` overrides, then explicit (non-None) flags."""
    from selflab.config import describe_validation_error

    data = merge(
        merge(read_yaml(config), parse_sets(sets)), {k: v for k, v in flags.items() if v is not None}
    )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings: {describe_validation_error(exc)}", "correct the values named above"
        ) from exc


def default_out(command: str, *parts: str) -> Path:
    """`runs/<command>-<parts>-<YYYYmmdd-HHMMSS>`: a fresh run directory per invocation."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / "-".join([command, *[p for p in parts if p], stamp])


def field_help(model: type[BaseModel], name: str) -> str:
    """A config field's description and default, for the flag that sets it."""
    f = model.model_fields[name]
    default = "" if f.is_required() else f" [config key: {name}]"
    return (f.description or name.replace("_", " ")) + default


# --- commands generated from a config model ---------------------------------------------------

_SHARED_FLAGS: dict[str, tuple[list[str], str]] = {
    "model": (["--model", "-m"], MODEL_HELP),
    "seed": (["--seed"], "Seed of every random choice (same seed, same result)."),
}


def _flag_type(annotation: Any) -> tuple[Any, bool] | None:
    """(CLI type, is_list) for a field type the command line can carry; None otherwise."""
    import types
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in (str, int, float, bool):
        return annotation, False
    if typing.get_origin(annotation) is list and typing.get_args(annotation) in ((str,), (int,)):
        return str, True
    return None


def config_options(
    cls: type[BaseModel], skip: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a command `fn(config, out, resume)`: the command gets `--config`, `--set`,
    `--out`, `--resume` and one flag per scalar (or list) field of `cls`, named after the field,
    with the field's description as help and its default shown. Precedence: file < --set < flags.
    Lists are given comma-separated."""
    import functools
    import inspect

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        params: list[inspect.Parameter] = []
        lists: set[str] = set()
        for name, field in cls.model_fields.items():
            kind = _flag_type(field.annotation)
            if name in skip or kind is None:
                continue
            typ, is_list = kind
            if is_list:
                lists.add(name)
            flags, help_ = _SHARED_FLAGS.get(name, ([f"--{name.replace('_', '-')}"], field.description or ""))
            if typ is bool:
                flags = [f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}"]
            default = field.get_default(call_default_factory=True)
            shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
            option = typer.Option(
                *flags, help=help_ + (" (comma-separated)" if is_list else ""), show_default=shown
            )
            params.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[typ | None, option],
                )
            )
        shared = [
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
            inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SetOpt),
            inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=OutOpt),
            inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=ResumeOpt),
        ]

        @functools.wraps(fn)
        def command(**kw: Any) -> Any:
            config, sets, out, resume = kw.pop("config"), kw.pop("set_"), kw.pop("out"), kw.pop("resume")
            for name in lists:
                if kw.get(name) is not None:
                    kw[name] = [x.strip() for x in str(kw[name]).split(",") if x.strip()]
            return fn(build_config(cls, config, sets, **kw), out, resume)

        command.__signature__ = inspect.Signature(params + shared)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params + shared}
        del command.__wrapped__  # typer must read the generated signature, not fn's
        return command

    return decorate
