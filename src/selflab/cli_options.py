"""The options every `selflab` command shares, defined once so they mean the same everywhere.

- `--config FILE`  YAML holding fields of the command's config model;
- `--set KEY=VALUE` one override (nested keys with dots, values parsed as YAML), repeatable;
- `--out DIR`      the run directory (default `runs/<command>-<time>`);
- `--resume`       continue the run in `--out`; what is recorded is kept, nothing is duplicated;
- `--model SPEC`   the model: smollm2-135m, hf:/path, openai:MODEL@URL;
- `--seed N`       the seed of every random choice.

Precedence: config file < `--set` < explicit flags. `config_options(Model)` generates a command's
flags from its config model, help = the field's description, so a flag, a `--set` key and a YAML
key are one setting documented by one sentence. Unknown keys and bad values are ConfigErrors.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from selflab.config import read_yaml
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
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):  # `--set a=1 --set a.b=2`: `a` is a value, not a mapping
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"{flag} {item!r} sets a key inside {prefix!r}, which an earlier {flag} gave a value",
                    f"give {prefix} either as a value or as nested keys, not both",
                )
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


def build_config(cls: type[C], config: Path | None = None, sets: list[str] | None = None, **flags: Any) -> C:
    """The command's config: YAML file, then `--set` overrides, then explicit (non-None) flags."""
    return ConfigInput(config, list(sets or []), flags).build(cls)


def default_out(command: str, *parts: str) -> Path:
    """`runs/<command>-<parts>-<YYYYmmdd-HHMMSS>`: a fresh run directory per invocation."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / "-".join([command, *[p for p in parts if p], stamp])


# --- commands generated from a config model ---------------------------------------------------

_SHARED_FLAGS: dict[str, tuple[list[str], str]] = {
    "model": (["--model", "-m"], MODEL_HELP),
    "seed": (["--seed"], "Seed of every random choice (same seed, same result)."),
}


@dataclasses.dataclass(frozen=True)
class ConfigInput:
    """What the user gave for a command's config, before it is built (`config_options(raw=True)`):
    commands that resume a saved config, or add their own defaults, build it themselves."""

    config: Path | None
    sets: list[str]
    flags: dict[str, Any]
    drop: tuple[str, ...] = ()  # keys of the YAML file that are not settings (a loop file's `loop:`)

    @property
    def given(self) -> bool:
        """Whether anything was given at all (a resumed run then keeps its saved config)."""
        return self.config is not None or bool(self.sets) or any(v is not None for v in self.flags.values())

    def build(self, cls: type[C], defaults: dict[str, Any] | None = None, drop: tuple[str, ...] = ()) -> C:
        """Command `defaults` < file < --set < flags; `drop` removes file keys that are not settings."""
        drop = (*self.drop, *drop)
        data = merge(defaults or {}, {k: v for k, v in read_yaml(self.config).items() if k not in drop})
        data = merge(
            merge(data, parse_sets(self.sets)), {k: v for k, v in self.flags.items() if v is not None}
        )
        return validate(cls, data)


def check_keys(cls: type[BaseModel], data: dict[str, Any]) -> None:
    """Unknown top-level keys are typos: name them and the nearest known settings."""
    import difflib

    known = sorted(cls.model_fields)
    for key in data:
        if key not in cls.model_fields:
            near = difflib.get_close_matches(key, known, n=3)
            hint = f"did you mean {' or '.join(near)}?" if near else f"known settings: {', '.join(known)}"
            raise ConfigError(f"unknown setting {key!r} for {cls.__name__}", hint)


def validate(cls: type[C], data: dict[str, Any]) -> C:
    """`cls(**data)`, or a ConfigError naming each bad setting."""
    from selflab.config import describe_validation_error

    check_keys(cls, data)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]]
        fix = (
            f"give {', '.join(missing)}: as a flag (see --help), --set KEY=VALUE or in the --config file"
            if missing
            else "correct the values named above"
        )
        raise ConfigError(f"invalid settings: {describe_validation_error(exc)}", fix) from exc


_DRY: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("selflab_dry_run", default=None)


@contextlib.contextmanager
def dry_run() -> Iterator[list[Any]]:
    """Commands made by `config_options` check their settings (file, --set, flags) and return
    without running; the configs they built are collected in the yielded list. Used to check that
    every documented command line still parses."""
    seen: list[Any] = []
    token = _DRY.set(seen)
    try:
        yield seen
    finally:
        _DRY.reset(token)


def _flag_type(annotation: Any) -> tuple[Any, bool] | None:
    """(CLI type, is_list) for a field type the command line can carry; None otherwise."""
    import types
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in (str, int, float, bool, Path):
        return annotation, False
    if typing.get_origin(annotation) is typing.Literal and all(
        isinstance(a, str) for a in typing.get_args(annotation)
    ):
        return str, False
    if typing.get_origin(annotation) is list and len(typing.get_args(annotation)) == 1:
        inner = typing.get_args(annotation)[0]
        literal = typing.get_origin(inner) is typing.Literal
        if inner in (str, int, float) or (
            literal and all(isinstance(a, str) for a in typing.get_args(inner))
        ):
            return str, True
    return None


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a Literal field (or of a list of Literals), for its help text."""
    import typing

    for arg in [annotation, *typing.get_args(annotation)]:
        if typing.get_origin(arg) is typing.Literal:
            return [str(a) for a in typing.get_args(arg)]
        if typing.get_origin(arg) is list:
            return _choices(typing.get_args(arg)[0])
    return []


def _names(name: str, typ: Any, flags: dict[str, list[str]], deprecated: dict[str, list[str]]) -> list[str]:
    dashed = name.replace("_", "-")
    names = list(flags.get(name) or _SHARED_FLAGS.get(name, ([f"--{dashed}"], ""))[0])
    if typ is bool:
        long = names[0].lstrip("-")
        names = [f"--{long}/--no-{long}", *names[1:]]
    return names + list(deprecated.get(name, []))


def _field_param(
    cls: type[BaseModel],
    name: str,
    flags: dict[str, list[str]],
    deprecated: dict[str, list[str]],
    argument: bool,
    repeat: bool = False,
    helps: dict[str, str] | None = None,
) -> tuple[inspect.Parameter, bool] | None:
    field = cls.model_fields[name]
    kind = _flag_type(field.annotation)
    if kind is None:
        return None
    typ, is_list = kind
    if repeat:
        typ, is_list = list[str], False
    help_ = (
        field.description
        or (helps or {}).get(name)
        or _SHARED_FLAGS.get(name, ([], name.replace("_", " ")))[1]
    )
    choices = _choices(field.annotation)
    if choices:
        help_ += f" (one of: {', '.join(choices)})"
    if name in deprecated:
        help_ += f" ({', '.join(deprecated[name])}: deprecated alias)"
    if is_list:
        help_ += " (comma-separated)"
    if repeat:
        help_ += " (repeatable)"
    metavar = name.upper()
    if argument:
        required = field.is_required()
        info = typer.Argument(help=help_, metavar=metavar, show_default=False)
        default: Any = inspect.Parameter.empty if required else None
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                 annotation=Annotated[typ if required else typ | None, info]), is_list  # fmt: skip
    value = None if field.is_required() else field.get_default(call_default_factory=True)
    if value not in (None, [], ""):
        help_ += f" (default: {','.join(map(str, value)) if isinstance(value, list) else value})"
    option = typer.Option(*_names(name, typ, flags, deprecated), help=help_, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[typ | None, option]), is_list  # fmt: skip


def config_options(
    cls: type[BaseModel],
    skip: tuple[str, ...] = (),
    *,
    flags: dict[str, list[str]] | None = None,
    deprecated: dict[str, list[str]] | None = None,
    arguments: tuple[str, ...] = (),
    repeat: tuple[str, ...] = (),
    helps: dict[str, str] | None = None,
    run_dir: bool = True,
    raw: bool = False,
    drop: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a command `fn(config, out, resume, **extra)`: the command gets `--config`,
    `--set`, `--out`, `--resume` and one flag per scalar (or list) field of `cls`, named after the
    field (or `flags[field]`, first name canonical), help = the field's description, default shown.
    `deprecated[field]` lists old names still accepted (noted in help); `arguments` are fields
    given positionally; `repeat` fields are lists given by repeating the flag (their items may hold
    commas). Parameters of `fn` after the first three are its own flags, passed as is.
    Precedence: file < --set < flags; lists are given comma-separated. With `raw=True`, `fn` gets
    a ConfigInput to build itself (e.g. to keep a resumed run's saved config). `helps` documents
    fields that have no description. A command that writes no run directory (`run_dir=False`) has
    no --out/--resume and is called as `fn(config, **extra)`. `drop`: YAML keys that are no settings.
    Under `dry_run()` the command builds its config and returns without running."""
    import functools
    import typing

    flags, deprecated = flags or {}, deprecated or {}

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
            for p in list(inspect.signature(fn).parameters.values())[3 if run_dir else 1 :]
        ]
        positional: list[inspect.Parameter] = []
        params: list[inspect.Parameter] = []
        lists: set[str] = set()
        fields: list[str] = []
        rest = sorted((n for n in cls.model_fields if n not in arguments), key=lambda n: n != "model")
        for name in [*arguments, *rest]:  # the shared --model first
            made = (
                None
                if name in skip
                else _field_param(cls, name, flags, deprecated, name in arguments, name in repeat, helps)
            )
            if made is None:
                continue
            param, is_list = made
            (positional if name in arguments else params).append(param)
            fields.append(name)
            if is_list:
                lists.add(name)
        shared = [
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
            inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SetOpt),
            inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=OutOpt),
            inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=ResumeOpt),
        ][: 4 if run_dir else 2]

        @functools.wraps(fn)
        def command(**kw: Any) -> Any:
            sets = list(kw.pop("set_") or [])
            given = ConfigInput(kw.pop("config"), sets, {n: kw.pop(n) for n in fields}, drop)
            for name in lists:
                if given.flags.get(name) is not None:
                    given.flags[name] = [x.strip() for x in str(given.flags[name]).split(",") if x.strip()]
            if run_dir and kw.get("resume") and kw.get("out") is None:
                raise ConfigError(
                    "--resume needs the run to continue", "pass its directory: --out DIR --resume"
                )
            cfg = given if raw else given.build(cls)
            seen = _DRY.get()
            if seen is not None:  # dry run: the settings are checked, nothing runs
                seen.append(cfg.build(cls) if isinstance(cfg, ConfigInput) and cfg.given else cfg)
                return None
            if not run_dir:
                return fn(cfg, **kw)
            return fn(cfg, kw.pop("out"), kw.pop("resume"), **kw)

        every = positional + params + shared + own
        command.selflab_config = cls  # type: ignore[attr-defined]
        command.__signature__ = inspect.Signature(every)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in every}
        del command.__wrapped__  # typer must read the generated signature, not fn's
        return command

    return decorate
