"""`selflab bench steps` (the step-level judge benchmark) and `selflab stepwise ...` (problems,
labelling, guided search). The training loop runs as `selflab loop stepwise`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from selflab.cli_options import config_options, default_out, validate
from selflab.console import log
from selflab.console import out as results
from selflab.errors import ConfigError
from selflab.stepwise.bench import StepBenchConfig
from selflab.stepwise.search_run import SearchRunConfig

stepwise_app = typer.Typer(
    help="Step-wise problems, labels from code, and step-guided search.", no_args_is_help=True
)


@config_options(
    StepBenchConfig,
    flags={"injected_per_family": ["--injected"], "model_written_per_family": ["--model-written"]},
)
def bench_steps(cfg: StepBenchConfig, out: Path | None, resume: bool) -> None:
    """Step-level judge benchmark: first-error localisation (ProcessBench) and step F1, with CIs."""
    from selflab.stepwise.bench import run_step_bench

    out = out or default_out("bench-steps")
    run_step_bench(cfg, out, resume=resume, console=results)
    log.print(f"wrote {out}/summary.json")


@stepwise_app.command("search")
@config_options(
    SearchRunConfig,
    skip=("expand",),
    flags={"problems_per_family": ["--problems"], "n": ["--n-samples"]},
    deprecated={"n": ["--n"]},
)
def search(cfg: SearchRunConfig, out: Path | None, resume: bool) -> None:
    """Best-of-N and step-level beam search guided by the step judge or the outcome judge, and
    majority vote, at equal sample budget on held-out problems (the beams use width * expand = n)."""
    from selflab.stepwise.search_run import run_search

    if cfg.n % cfg.width:
        raise ConfigError(
            f"--n-samples {cfg.n} is not a multiple of --width {cfg.width}", "pick n-samples = width * expand"
        )
    cfg = validate(SearchRunConfig, {**cfg.model_dump(), "expand": cfg.n // cfg.width})
    run_search(cfg, str(out or default_out("stepwise-search")), resume=resume, console=results)


@stepwise_app.command("problems")
def show_problems(
    family: Annotated[str, typer.Argument(help="arithmetic, blocks, dates or detective.")],
    n: Annotated[int, typer.Option(help="How many.")] = 3,
    split: Annotated[str, typer.Option(help="train or heldout.")] = "train",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Print seeded problems of a family with their gold step-by-step solutions (JSONL)."""
    from selflab.stepwise import step_problems

    for p in step_problems(family, n, seed, split):  # type: ignore[arg-type]
        typer.echo(json.dumps(p.model_dump()))


@stepwise_app.command("label")
def label(
    family: Annotated[str, typer.Argument(help="arithmetic, blocks, dates or detective.")],
    problems_file: Annotated[Path, typer.Argument(help="JSONL of problems (from `stepwise problems`).")],
    solution: Annotated[str, typer.Argument(help="A solution text, or '-' to read it from stdin.")],
) -> None:
    """Label every step of a solution to the first problem in the file (JSON out)."""
    import sys

    from selflab.errors import SelflabError
    from selflab.stepwise import StepProblem, get_family

    try:
        first = problems_file.read_text(encoding="utf-8").splitlines()[0]
        problem = StepProblem.model_validate_json(first)
    except (OSError, IndexError, ValueError) as exc:
        raise SelflabError(
            f"cannot read a problem from {problems_file}: {exc}", "write it with `selflab stepwise problems`"
        ) from exc
    text = sys.stdin.read() if solution == "-" else solution.replace("\\n", "\n")
    lab = get_family(family).label(problem, text)
    typer.echo(json.dumps({**lab.model_dump(), "first_error": lab.first_error}, indent=2))


def register(app: typer.Typer) -> None:
    """`bench steps` joins the judge benchmark's `bench` group; `stepwise` is its own group."""
    from selflab.evalbench.cli import bench_app

    bench_app.command("steps")(bench_steps)
    app.add_typer(stepwise_app, name="stepwise")
