"""`selflab loops`, `selflab loop NAME`, `selflab eval`, `selflab report`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table
from typer.core import TyperGroup

from selflab.cli_options import ConfigInput, config_options, default_out
from selflab.console import fit, log
from selflab.console import out as results
from selflab.errors import ConfigError
from selflab.execution.cli import ExecutorOpt, RayAddressOpt, WorkersOpt
from selflab.execution.config import from_cli, preflight

# Help for settings many loop configs share but do not describe (the configs live in loops/).
LOOP_HELPS = {
    "iterations": "Iterations of the loop (each runs every stage once).",
    "temperature": "Sampling temperature of the training samples.",
    "top_p": "Nucleus sampling mass.",
    "max_new_tokens": "Tokens per sampled answer.",
    "eval_max_new_tokens": "Tokens per answer in the held-out evaluation (greedy).",
    "judge_max_new_tokens": "Tokens per self-judgment.",
    "heldout_topic_fraction": "Share of topics held out for evaluation (never trained on).",
    "heldout_fraction": "Share of tasks held out for evaluation (never trained on).",
    "objective": "Training objective.",
    "eval_tasks": "Fixed held-out evaluation tasks.",
    "control_tasks": "Tasks of the untrained control family.",
    "judge_samples": "Judgments averaged per answer.",
    "bench_items": "Judge-benchmark items in the evaluation.",
    "families": "Task families.",
    "samples_per_prompt": "Samples per prompt.",
    "samples_per_task": "Samples per task.",
    "samples_per_problem": "Samples per problem.",
    "constitution": "Constitution YAML (default: the shipped starter).",
}


def load_loop_config(loop_cls: Any, path: Path | None, sets: list[str]) -> Any:
    """The loop's config from an optional YAML file (its `loop:` key ignored) plus `--set` overrides."""
    return ConfigInput(path, list(sets), {}).build(loop_cls.Config, drop=("loop",))


def loops_command() -> None:
    """List the self-improvement loops."""
    from selflab.loops.base import BROKEN_LOOP_MODULES, list_loops

    table = Table(title="selflab loops")
    table.add_column("name")
    table.add_column("stages per iteration")
    table.add_column("what it does")
    for name, cls in list_loops().items():
        table.add_row(name, " → ".join(cls.stages), cls.description)
    results.print(fit(table))
    for module, error in BROKEN_LOOP_MODULES.items():
        log.print(f"[red]loop module selflab.loops.{module} failed to import:[/red] {error}")


def _loop_click_command(loop_cls: Any) -> Any:  # typer's (vendored) click Command
    """`selflab loop NAME`: flags generated from the loop's config model (nested keys via --set)."""
    sub = typer.Typer()

    @sub.command(loop_cls.name, help=f"{loop_cls.description} (stages: {' → '.join(loop_cls.stages)})")
    @config_options(loop_cls.Config, raw=True, drop=("loop",), helps=LOOP_HELPS)
    def run(
        given: ConfigInput,
        out: Path | None,
        resume: bool,
        executor: ExecutorOpt = "",
        workers: WorkersOpt = None,
        ray_address: RayAddressOpt = None,
    ) -> None:
        from selflab.loops.base import open_run

        out = out or default_out(loop_cls.name)
        cfg = None if (resume and not given.given) else given.build(loop_cls.Config)
        command = " ".join(shlex.quote(a) for a in ["selflab", *sys.argv[1:]])
        if executor:  # overrides the config's `executor:`; records do not depend on it, so resume may differ
            ex_cfg = from_cli(executor, workers, ray_address)
            preflight(ex_cfg)
        elif cfg is not None:
            preflight(cfg.executor)  # `executor: ray` without Ray: the install command, before any output
        loop = open_run(loop_cls, out, cfg, resume=resume, command=command, console=results)
        if executor:
            loop.config = loop.config.model_copy(update={"executor": ex_cfg})
        loop.run_loop()

    return typer.main.get_command(sub)


class LoopGroup(TyperGroup):
    """One sub-command per registered loop, built when asked for (so `selflab --help` imports no
    loop); an unknown name is a SelflabError listing the loops."""

    def list_commands(self, ctx: Any) -> list[str]:
        from selflab.loops.base import list_loops

        return list(list_loops())

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from selflab.loops.base import get_loop

        return _loop_click_command(get_loop(cmd_name))


loop_app = typer.Typer(
    cls=LoopGroup,
    help="Run a loop (see `selflab loops`); every stage is recorded in the run directory and skipped "
    "on --resume. Settings: --config FILE, --set key=value (nested a.b=1), or the flags of `selflab loop NAME --help`.",
    no_args_is_help=True,
)


class EvalConfig(BaseModel):
    """What `selflab eval` compares, saved in the run's run.yaml."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1, description="Model specs; the first is the baseline.")
    tasks: str = Field("instructions", description="Task family: instructions, arithmetic, ...")
    n: int = Field(100, ge=1, description="Held-out tasks.")
    control: str | None = Field("arithmetic", description="Second, untrained family ('' to skip).")
    control_n: int = Field(40, ge=1, description="Held-out tasks of the control family.")
    self_judge: bool = Field(True, description="Also score answers with each model as its own judge.")
    max_new_tokens: int = Field(96, ge=1, description="Tokens per answer.")
    seed: int = Field(0, description="Seed of the held-out task draw.")
    bench_items: int = Field(16, ge=0, description="Held-out judge-benchmark items.")
    game: str = Field("perudo-small-v0", description="Game of the win-rate rows ('' to skip).")
    game_opponents: list[str] = Field(
        default_factory=lambda: ["random", "scripted"], description="Fixed opponents of the win-rate rows."
    )
    game_episodes: int = Field(8, ge=0, description="Games per fixed opponent.")


@config_options(EvalConfig, flags={"models": ["--model", "-m"]}, deprecated={"models": ["--models"]})
def eval_command(
    cfg: EvalConfig,
    out: Path | None,
    resume: bool,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the panel's PNG plot here too.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
) -> None:
    """Compare models/checkpoints on one objective panel (held-out verifier pass rate, untrained
    control family, judge-benchmark accuracy vs code truth) plus self-reward and length, with CIs
    and paired tests against the first model, in one table (and one plot with --plot). Writes a
    run directory (run.yaml, records/panel.jsonl, metrics.jsonl, panel.png, report.html)."""
    from selflab.loops.evaluate import compare_models
    from selflab.results import finish
    from selflab.runs import RunDir

    if resume:
        raise ConfigError("selflab eval does not resume", "run it again with a new --out (it is one pass)")
    run = RunDir.create(out or default_out("eval"), config=cfg, seed=cfg.seed, command="selflab eval")
    results_ = compare_models(
        cfg.models,
        family=cfg.tasks,  # type: ignore[arg-type]
        n=cfg.n,
        control=cfg.control or None,  # type: ignore[arg-type]
        control_n=cfg.control_n,
        self_judge=cfg.self_judge,
        max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed,
        bench_items=cfg.bench_items,
        game=cfg.game or None,
        game_opponents=tuple(cfg.game_opponents),
        game_episodes=cfg.game_episodes,
        plot=plot or run.path / "panel.png",
        console=results,
    )
    dumps = [r.model_dump(mode="json") for r in results_]
    run.records("panel").extend(dumps)
    finish(run, [{"kind": "eval_panel", "models": cfg.models, "results": dumps}])
    if json_out:
        json_out.write_text(json.dumps(dumps, indent=2), encoding="utf-8")


def report_command(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """(Re)write report.html for a run directory."""
    from selflab.report import write_report

    typer.echo(str(write_report(run_dir)))


def register(app: typer.Typer) -> None:
    """Add `selflab loops`, `selflab loop`, `selflab eval`, `selflab report`."""
    app.command("loops")(loops_command)
    app.add_typer(loop_app, name="loop")
    app.command("eval")(eval_command)
    app.command("report")(report_command)
