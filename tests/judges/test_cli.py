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


def test_items_file_rows_that_are_no_item_are_named(tmp_path: Path) -> None:
    """A misspelt key used to drop the row without a word (and both kinds judged it twice)."""
    import pytest

    from selflab.errors import ConfigError
    from selflab.judges.cli import _read_items

    cases = {
        '{"prompt": "2+2?", "respone": "4"}': "has no response to judge (keys: prompt, respone)",
        '{"prompt": "2+2?", "response_a": "4"}': "has no response to judge",
        '{"prompt": "2+2?", "response": "4", "response_a": "4", "response_b": "5"}': "both 'response'",
        '["2+2?", "4"]': "is a JSON list, not an object",
        '{"response": "4"}': "has no 'prompt'",
        "": "holds no items",
    }
    for line, message in cases.items():
        path = tmp_path / "items.jsonl"
        path.write_text('{"prompt": "1+1?", "response": "2"}\n' * bool(line) + line + "\n")
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
            _read_items(path)
        assert line == "" or f"{path}:2" in str(e.value)
    path.write_text(
        '{"prompt": "1+1?", "response": "2"}\n{"prompt": "q", "response_a": "a", "response_b": "b"}\n'
    )
    assert len(_read_items(path)) == 2
