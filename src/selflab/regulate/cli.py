"""`selflab constitution atomic|debate|refine|train|eval|show|diff|report|summary`.

Every experiment is a loop over a run directory (run.yaml, records/, constitutions/, metrics.jsonl,
report.html) and continues with --resume. Console output shows metrics only, never prompt text.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
app = typer.Typer(
    help="Self-regulation: constitutions that models amend, scored by objective measures.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config (see configs/regulate*.yaml).")
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Run directory.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue a killed run from its last completed stage.")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting: key=value (nested: suite.harmful=20).")
]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model spec (overrides the config).")]


def _run(
    loop_cls: Any,
    default_out: str,
    config: Path | None,
    out: Path | None,
    resume: bool,
    sets: list[str] | None,
    model: str | None,
    extra: dict[str, Any] | None = None,
) -> None:
    from selflab.loops.base import open_run
    from selflab.loops.cli import load_loop_config

    sets = list(sets or [])
    if model:
        sets.append(f"model={model}")
    for k, v in (extra or {}).items():  # command defaults; a resumed run keeps its saved config
        if not resume and not any(s.startswith(f"{k}=") for s in sets):
            sets.append(f"{k}={v}")
    out = out or Path("runs") / default_out
    cfg = None if (resume and config is None and not sets) else load_loop_config(loop_cls, config, sets)
    command = " ".join(shlex.quote(a) for a in ["selflab", *sys.argv[1:]])
    loop = open_run(loop_cls, out, cfg, resume=resume, command=command, console=console)
    loop.run_loop()


@app.command("atomic")
def atomic_cmd(
    config: ConfigOpt = None,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Experiment 1: can one model patch its constitution against a known exploit? (single proposer)"""
    from selflab.regulate.atomic import AtomicLoop

    _run(
        AtomicLoop, "constitution-atomic", config, out, resume, set_, model, extra={"strategies": "[single]"}
    )


@app.command("debate")
def debate_cmd(
    config: ConfigOpt = None,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Experiment 2: single model vs consortium vs debate (with meta-judge and vote) on the atomic cases."""
    from selflab.regulate.atomic import AtomicLoop

    _run(AtomicLoop, "constitution-debate", config, out, resume, set_, model)


@app.command("refine")
def refine_cmd(
    config: ConfigOpt = None,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Experiment 3: N cycles of red-team, debate, vote; held-out evaluation and collapse checks."""
    from selflab.regulate.refine import RefineLoop

    _run(RefineLoop, "constitution-refine", config, out, resume, set_, model)


@app.command("train")
def train_cmd(
    config: ConfigOpt = None,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Critique and revision under the constitution -> SFT on revisions / DPO revision-over-original."""
    from selflab.regulate.train import ConstitutionTrainLoop

    _run(ConstitutionTrainLoop, "constitution-train", config, out, resume, set_, model)


@app.command("eval")
def eval_cmd(
    config: ConfigOpt = None,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Held-out safety suite for one model under one constitution (or none: --set constitution=none)."""
    from selflab.regulate.train import ConstitutionEvalLoop

    _run(ConstitutionEvalLoop, "constitution-eval", config, out, resume, set_, model)


@app.command("show")
def show_cmd(
    path: Annotated[
        Path | None, typer.Argument(help="Constitution YAML (default: the shipped starter).")
    ] = None,
) -> None:
    """Validate a constitution file and print it as the model sees it."""
    from selflab.regulate.constitution import load_constitution

    c = load_constitution(path)
    console.print(f"[bold]{c.name}[/bold] v{c.version}: {len(c.principles)} principles")
    console.print(c.render(), markup=False)


@app.command("diff")
def diff_cmd(old: Annotated[Path, typer.Argument()], new: Annotated[Path, typer.Argument()]) -> None:
    """Readable diff between two constitution files."""
    from selflab.regulate.constitution import diff, load_constitution

    console.print(diff(load_constitution(old), load_constitution(new)) or "(no change)", markup=False)


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="A constitution run directory.")]) -> None:
    """(Re)write report.html with the regulate sections (versions, diffs, comparison, collapse)."""
    from selflab.regulate.report import append_regulate_section

    typer.echo(str(append_regulate_section(run_dir)))


@app.command("summary")
def summary_cmd(run_dir: Annotated[Path, typer.Argument(help="A constitution run directory.")]) -> None:
    """Print a run's numbers as Markdown (metrics with CIs, comparison, collapse checks, diffs)."""
    from selflab.regulate.report import markdown_summary

    typer.echo(markdown_summary(run_dir))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="constitution")
