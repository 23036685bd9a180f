"""`selflab judge`: judge one response, a pair, or a JSONL file of items with any judge kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selflab.cli_options import MODEL_HELP, parse_sets
from selflab.console import fit
from selflab.errors import ConfigError

console = Console()


def _read_items(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"items file {str(path)!r} does not exist", "pass an existing .jsonl file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number} is not valid JSON ({exc.msg})", "write one JSON object per line"
            ) from exc
        rows.append(_check_item(row, f"{path}:{number}"))
    if not rows:
        raise ConfigError(f"items file {str(path)!r} holds no items", "write one JSON object per line")
    return rows


def _check_item(row: object, where: str) -> dict:
    """One row that is exactly one kind of item. A row with neither `response` nor both
    `response_a`/`response_b` (a typo such as "respone") was skipped without a word, and a row with
    both kinds judged twice; either way the user's item silently went missing or changed kind."""
    fix = 'write {"prompt": ..., "response": ...} or {"prompt": ..., "response_a": ..., "response_b": ...}'
    if not isinstance(row, dict):
        raise ConfigError(f"{where} is a JSON {type(row).__name__}, not an object", fix)
    pointwise = "response" in row
    pairwise = [k for k in ("response_a", "response_b") if k in row]
    if pointwise and pairwise:
        raise ConfigError(f"{where} has both 'response' and {pairwise}: is it graded or compared?", fix)
    if not pointwise and len(pairwise) != 2:
        found = ", ".join(sorted(row)) or "no keys"
        raise ConfigError(f"{where} has no response to judge (keys: {found})", fix)
    if "prompt" not in row:
        raise ConfigError(f"{where} has no 'prompt'", fix)
    return row


def judge_command(
    judge: Annotated[
        str,
        typer.Option("--judge", "-j", help="Judge kind, e.g. rubric, pairwise, likelihood, jury:personas:5."),
    ] = "rubric",
    model: Annotated[
        str, typer.Option("--model", "-m", help=MODEL_HELP + " The judge's model.")
    ] = "smollm2-135m",
    prompt: Annotated[str | None, typer.Option(help="The user's question.")] = None,
    response: Annotated[
        list[str] | None, typer.Option("--response", "-r", help="One response (graded) or two (compared).")
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="A known-correct answer (reference-guided judging).")
    ] = None,
    items: Annotated[
        Path | None,
        typer.Option(help="JSONL of items: {prompt, response} or {prompt, response_a, response_b}."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write every judgment as JSONL here.")] = None,
    opt: Annotated[
        list[str] | None,
        typer.Option(
            "--opt",
            help="Judge option key=value (YAML value, like --set), repeatable; --list-options shows each kind's.",
        ),
    ] = None,
    list_options: Annotated[
        bool, typer.Option("--list-options", help="Print every judge kind's options and exit.")
    ] = False,
) -> None:
    """Judge responses with a model and print the parsed scores/verdicts (parse failures shown as such)."""
    from selflab.judges.factory import build_judge, options_help
    from selflab.judges.types import PairwiseItem, PointwiseItem
    from selflab.models import load_model

    if list_options:
        typer.echo(options_help())
        return
    if items is not None:
        rows = _read_items(items)
    elif prompt is not None and response:
        if len(response) > 2:
            raise ConfigError(
                "--response was given more than twice", "give one response to grade or two to compare"
            )
        rows = [{"prompt": prompt, "reference": reference, "id": "cli"}]
        if len(response) == 1:
            rows[0]["response"] = response[0]
        else:
            rows[0]["response_a"], rows[0]["response_b"] = response
    else:
        raise ConfigError(
            "nothing to judge", "pass --prompt with one or two --response, or --items FILE.jsonl"
        )
    try:
        point = [PointwiseItem(**r) for r in rows if "response" in r]
        pair = [PairwiseItem(**r) for r in rows if "response_a" in r]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"an item is malformed: {exc}", "items need prompt and response (or response_a, response_b)"
        ) from exc
    judge_obj = build_judge(judge, load_model(model), **parse_sets(opt, "--opt"))
    judgments = []
    for needed, protocol in ((point, "pointwise"), (pair, "pairwise")):
        if needed and protocol not in judge_obj.protocols:
            raise ConfigError(
                f"judge {judge!r} cannot judge {protocol} items", f"it serves {sorted(judge_obj.protocols)}"
            )
    if point:
        judgments += judge_obj.judge(point)  # type: ignore[attr-defined]
    if pair:
        judgments += judge_obj.compare(pair)  # type: ignore[attr-defined]
    table = Table(title=getattr(judge_obj, "name", judge))
    for column in ("item", "score / verdict", "parse error", "raw (end)"):
        table.add_column(column)
    for j in judgments:
        value = f"{j.score:.2f}" if j.score is not None and j.kind == "pointwise" else str(j.verdict or "")
        table.add_row(j.item_id, value, j.parse_error or "", j.raw[-80:].replace("\n", " "))
    console.print(fit(table))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for j in judgments:
                f.write(j.model_dump_json() + "\n")
        console.print(f"wrote {len(judgments)} judgments to {out}")


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)
