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

from selflab.cli_options import ConfigInput, config_options, default_out
from selflab.console import out as results
from selflab.loops.cli import LOOP_HELPS
from selflab.regulate.atomic import AtomicLoop
from selflab.regulate.refine import RefineLoop
from selflab.regulate.train import ConstitutionEvalLoop, ConstitutionTrainLoop

console = results
app = typer.Typer(
    help="Self-regulation: constitutions that models amend, scored by objective measures.",
    no_args_is_help=True,
)


def _run(loop_cls: Any, name: str, given: ConfigInput, out: Path | None, resume: bool,
         defaults: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Open (or resume) the loop's run and run it. `defaults`: this command's settings under the
    file, --set and flags; a resumed run given no settings keeps its saved config."""
    from selflab.loops.base import open_run

    out = out or default_out(name)
    cfg = None if (resume and not given.given) else given.build(loop_cls.Config, defaults)
    command = " ".join(shlex.quote(a) for a in ["selflab", *sys.argv[1:]])
    loop = open_run(loop_cls, out, cfg, resume=resume, command=command, console=results)
    loop.run_loop()


@app.command("atomic")
@config_options(AtomicLoop.Config, raw=True, drop=("loop",), helps=LOOP_HELPS)
def atomic_cmd(given: ConfigInput, out: Path | None, resume: bool) -> None:
    """Experiment 1: can one model patch its constitution against a known exploit? (single proposer)"""
    _run(AtomicLoop, "constitution-atomic", given, out, resume, defaults={"strategies": ["single"]})


@app.command("debate")
@config_options(AtomicLoop.Config, raw=True, drop=("loop",), helps=LOOP_HELPS)
def debate_cmd(given: ConfigInput, out: Path | None, resume: bool) -> None:
    """Experiment 2: single model vs consortium vs debate (with meta-judge and vote) on the atomic cases."""
    _run(AtomicLoop, "constitution-debate", given, out, resume)


@app.command("refine")
@config_options(RefineLoop.Config, raw=True, drop=("loop",), helps=LOOP_HELPS)
def refine_cmd(given: ConfigInput, out: Path | None, resume: bool) -> None:
    """Experiment 3: N cycles of red-team, debate, vote; held-out evaluation and collapse checks."""
    _run(RefineLoop, "constitution-refine", given, out, resume)


@app.command("train")
@config_options(ConstitutionTrainLoop.Config, raw=True, drop=("loop",), helps=LOOP_HELPS)
def train_cmd(given: ConfigInput, out: Path | None, resume: bool) -> None:
    """Critique and revision under the constitution -> SFT on revisions / DPO revision-over-original."""
    _run(ConstitutionTrainLoop, "constitution-train", given, out, resume)


@app.command("eval")
@config_options(ConstitutionEvalLoop.Config, raw=True, drop=("loop",), helps=LOOP_HELPS)
def eval_cmd(given: ConfigInput, out: Path | None, resume: bool) -> None:
    """Held-out safety suite for one model under one constitution (or none: --set constitution=none)."""
    _run(ConstitutionEvalLoop, "constitution-eval", given, out, resume)


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
