"""`selflab bench steps` (the step-level judge benchmark) and `selflab stepwise ...` (problems,
labelling, guided search). The training loop runs as `selflab loop stepwise`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

stepwise_app = typer.Typer(
    help="Step-wise problems, labels from code, and step-guided search.", no_args_is_help=True
)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def bench_steps(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model spec (judge and solution writer).")
    ] = "smollm2-135m",
    families: Annotated[str | None, typer.Option(help="Comma-separated families (default: all).")] = None,
    injected: Annotated[int, typer.Option(help="Items with code-made mistakes per family.")] = 20,
    model_written: Annotated[int, typer.Option(help="Model-written solutions per family.")] = 8,
    judges: Annotated[str, typer.Option(help="Comma-separated: llm, likelihood.")] = "llm,likelihood",
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run in --out.")] = False,
) -> None:
    """Step-level judge benchmark: first-error localisation (ProcessBench) and step F1, with CIs."""
    from selflab.stepwise.bench import StepBenchConfig, run_step_bench

    cfg = StepBenchConfig.model_validate(
        {
            "model": model,
            "injected_per_family": injected,
            "model_written_per_family": model_written,
            "judges": _csv(judges),
            "seed": seed,
            **({"families": _csv(families)} if families else {}),
        }
    )
    run_step_bench(cfg, out, resume=resume, console=Console())
    Console().print(f"wrote {out}/summary.json")


@stepwise_app.command("search")
def search(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec.")] = "smollm2-135m",
    families: Annotated[str | None, typer.Option(help="Comma-separated families (default: all).")] = None,
    problems: Annotated[int, typer.Option(help="Held-out problems per family.")] = 10,
    n: Annotated[int, typer.Option(help="Samples per problem (the budget); beams use width*expand=n.")] = 8,
    width: Annotated[int, typer.Option(help="Beam width.")] = 2,
    methods: Annotated[str | None, typer.Option(help="Comma-separated subset of the methods.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per full solution.")] = 120,
    max_steps: Annotated[int, typer.Option(help="Beam search depth (steps).")] = 6,
    token_budget: Annotated[
        int | None,
        typer.Option(
            help="Tokens a beam search may generate per problem (default: what the N samples spent)."
        ),
    ] = None,
    constrain: Annotated[
        bool, typer.Option("--constrain", help="Constrain decoding to the family's step format.")
    ] = False,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume")] = False,
) -> None:
    """Best-of-N and step-level beam search guided by the step judge or the outcome judge, and
    majority vote, at equal generated tokens on held-out problems."""
    from selflab.errors import ConfigError
    from selflab.stepwise.search_run import SearchRunConfig, run_search

    if n % width:
        raise ConfigError(f"--n {n} is not a multiple of --width {width}", "pick n = width * expand")
    data: dict = {
        "model": model,
        "problems_per_family": problems,
        "n": n,
        "width": width,
        "expand": n // width,
        "max_new_tokens": max_new_tokens,
        "max_steps": max_steps,
        "token_budget": token_budget,
        "constrain": constrain,
        "seed": seed,
    }
    if families:
        data["families"] = _csv(families)
    if methods:
        data["methods"] = _csv(methods)
    run_search(SearchRunConfig.model_validate(data), str(out), resume=resume, console=Console())


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
