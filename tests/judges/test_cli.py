"""`selflab judge` through typer's CliRunner on the tiny llama."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from selflab.judges.cli import register
from selflab.models.testing import tiny_llama


def test_judge_cli_writes_judgments(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `judge` a subcommand
    spec = f"hf:{tiny_llama(tmp_path / 'tiny')}"
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"prompt": "2+2?", "response": "4", "id": "p1"})
        + "\n"
        + json.dumps({"prompt": "2+2?", "response_a": "4", "response_b": "5", "id": "q1"})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    args = ["judge", "-m", spec, "--judge", "likelihood", "--items", str(items), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["p1", "q1"] and [r["kind"] for r in rows] == [
        "pointwise",
        "pairwise",
    ]
    assert all(r["parse_error"] is None for r in rows)
    bad = CliRunner().invoke(app, ["judge", "-m", spec, "--opt", "nonsense"])
    assert bad.exit_code != 0
