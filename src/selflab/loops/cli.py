"""`selflab loops`, `selflab loop NAME`, `selflab eval`, `selflab report`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from selflab.cli_options import OutOpt, default_out
from selflab.cli_options import merge as _merge
from selflab.cli_options import parse_sets as _parse_sets
from selflab.errors import ConfigError
from selflab.execution.cli import ExecutorOpt, RayAddressOpt, WorkersOpt
from selflab.execution.config import from_cli, preflight

console = Console()


def load_loop_config(loop_cls: Any, path: Path | None, sets: list[str]) -> Any:
    """The loop's config from an optional YAML file plus `--set` overrides (nested keys allowed)."""
    from pydantic import ValidationError

    from selflab.config import describe_validation_error

    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", "check the --config path")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML", "fix the YAML syntax") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping", "write it as key: value lines")
        loaded.pop("loop", None)
        data = loaded
    data = _merge(data, _parse_sets(sets))
    try:
        return loop_cls.Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings for loop {loop_cls.name}: {describe_validation_error(exc)}",
            "correct the values named above",
        ) from exc


def loops_command() -> None:
    """List the self-improvement loops."""
    from selflab.loops.base import BROKEN_LOOP_MODULES, list_loops

    table = Table(title="selflab loops")
    table.add_column("name")
    table.add_column("stages per iteration")
    table.add_column("what it does")
    for name, cls in list_loops().items():
        table.add_row(name, " → ".join(cls.stages), cls.description)
    console.print(table)
    for module, error in BROKEN_LOOP_MODULES.items():
        console.print(f"[red]loop module selflab.loops.{module} failed to import:[/red] {error}")


def loop_command(
    name: Annotated[str, typer.Argument(help="Loop name (see `selflab loops`).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config for the loop.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default runs/<loop name>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a killed run from its last stage.")
    ] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting: key=value.")] = None,
    executor: ExecutorOpt = "",
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Run a loop; every stage is recorded in the run directory and skipped on --resume."""
    from selflab.loops.base import get_loop, open_run

    loop_cls = get_loop(name)
    out = out or Path("runs") / name
    cfg = None if (resume and config is None and not set_) else load_loop_config(loop_cls, config, set_ or [])
    command = " ".join(shlex.quote(a) for a in ["selflab", *sys.argv[1:]])
    if executor:  # overrides the config's `executor:`; records do not depend on it, so resume may differ
        ex_cfg = from_cli(executor, workers, ray_address)
        preflight(ex_cfg)
    elif cfg is not None:
        preflight(cfg.executor)  # `executor: ray` without Ray: the install command, before any output
    loop = open_run(loop_cls, out, cfg, resume=resume, command=command, console=console)
    if executor:
        loop.config = loop.config.model_copy(update={"executor": ex_cfg})
    loop.run_loop()


def eval_command(
    models: Annotated[
        str,
        typer.Option(
            "--model", "-m", "--models", help="Comma-separated model specs; the first is the baseline."
        ),
    ],
    tasks: Annotated[
        str, typer.Option("--tasks", help="Task family: instructions, arithmetic, ...")
    ] = "instructions",
    n: Annotated[int, typer.Option("--n", help="Held-out tasks.")] = 100,
    control: Annotated[
        str | None, typer.Option("--control", help="Second, untrained family.")
    ] = "arithmetic",
    control_n: Annotated[int, typer.Option("--control-n")] = 40,
    self_judge: Annotated[bool, typer.Option("--self-judge/--no-self-judge")] = True,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 96,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out task draw.")] = 0,
    bench_items: Annotated[int, typer.Option("--bench-items", help="Held-out judge-benchmark items.")] = 16,
    game: Annotated[
        str, typer.Option("--game", help="Game of the win-rate rows ('' to skip).")
    ] = "perudo-small-v0",
    game_opponents: Annotated[
        str, typer.Option("--game-opponents", help="Fixed opponents, comma-separated.")
    ] = ("random,scripted"),
    game_episodes: Annotated[int, typer.Option("--game-episodes", help="Games per fixed opponent.")] = 8,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write one PNG plot of the panel.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    out: OutOpt = None,
) -> None:
    """Compare models/checkpoints on one objective panel (held-out verifier pass rate, untrained
    control family, judge-benchmark accuracy vs code truth) plus self-reward and length, with CIs
    and paired tests against the first model, in one table (and one plot with --plot). Writes a
    run directory (run.yaml, records/panel.jsonl, metrics.jsonl, panel.png, report.html)."""
    from selflab.loops.evaluate import compare_models
    from selflab.results import finish
    from selflab.runs import RunDir

    specs = [s.strip() for s in models.split(",") if s.strip()]
    if not specs:
        raise ConfigError("--models is empty", "give one or more model specs separated by commas")
    config = {"models": specs, "tasks": tasks, "n": n, "control": control, "control_n": control_n,
              "self_judge": self_judge, "max_new_tokens": max_new_tokens, "bench_items": bench_items,
              "game": game, "game_opponents": game_opponents, "game_episodes": game_episodes}  # fmt: skip
    run = RunDir.create(out or default_out("eval"), config=config, seed=seed, command="selflab eval")
    plot = plot or run.path / "panel.png"
    results = compare_models(
        specs,
        family=tasks,  # type: ignore[arg-type]
        n=n,
        control=control,  # type: ignore[arg-type]
        control_n=control_n,
        self_judge=self_judge,
        max_new_tokens=max_new_tokens,
        seed=seed,
        bench_items=bench_items,
        game=game or None,
        game_opponents=tuple(o.strip() for o in game_opponents.split(",") if o.strip()),
        game_episodes=game_episodes,
        plot=plot,
        console=console,
    )
    dumps = [r.model_dump(mode="json") for r in results]
    run.records("panel").extend(dumps)
    finish(run, [{"kind": "eval_panel", "models": specs, "results": dumps}])
    if json_out:
        json_out.write_text(json.dumps(dumps, indent=2), encoding="utf-8")


def report_command(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """(Re)write report.html for a run directory."""
    from selflab.report import write_report

    typer.echo(str(write_report(run_dir)))


def register(app: typer.Typer) -> None:
    """Add `selflab loops`, `selflab loop`, `selflab eval`, `selflab report`."""
    app.command("loops")(loops_command)
    app.command("loop")(loop_command)
    app.command("eval")(eval_command)
    app.command("report")(report_command)
