"""The loop and training commands, through typer, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from selflab.errors import ConfigError, SelflabError
from selflab.loops.cli import register as register_loops
from selflab.models.testing import tiny_llama
from selflab.training.cli import register as register_training


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register_loops(a)
    register_training(a)
    return a


def test_loops_lists_registered_loops(app: typer.Typer) -> None:
    res = CliRunner().invoke(app, ["loops"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "verified-sft" in res.output and "generate → verify" in res.output


def test_loop_rejects_bad_settings(app: typer.Typer, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["loop", "verified-sft", "--set", "iterations=0", "--out", str(tmp_path / "r")]
    )
    assert isinstance(res.exception, ConfigError) and "iterations" in res.exception.problem
    res = CliRunner().invoke(
        app, ["loop", "verified-sft", "--set", "no_such_key=1", "--out", str(tmp_path / "r")]
    )
    assert isinstance(res.exception, ConfigError) and "no_such_key" in res.exception.problem
    res = CliRunner().invoke(app, ["loop", "nope"])
    assert isinstance(res.exception, SelflabError) and "verified-sft" in res.exception.fix
    res = CliRunner().invoke(app, ["loop", "verified-sft", "--config", str(tmp_path / "missing.yaml")])
    assert isinstance(res.exception, ConfigError)


def test_train_sft_from_file(app: typer.Typer, tmp_path: Path) -> None:
    tiny = tiny_llama(tmp_path / "tiny")
    data = tmp_path / "d.jsonl"
    data.write_text(
        "\n".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(4)) + "\n"
    )
    out = tmp_path / "ckpt"
    res = CliRunner().invoke(
        app,
        ["train", "sft", "--data", str(data), "--model", f"hf:{tiny}", "--out", str(out), "--max-steps", "1"],
    )
    assert res.exit_code == 0, res.output
    assert f"hf:{out}" in res.output and (out / "selflab_checkpoint.json").is_file()


def test_eval_compares_models_on_objective_metrics(app: typer.Typer, tmp_path: Path) -> None:
    tiny = tiny_llama(tmp_path / "tiny")
    out = tmp_path / "eval.json"
    spec = f"hf:{tiny}"
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--models",
            f"{spec},{spec}",
            "--n",
            "3",
            "--control-n",
            "2",
            "--max-new-tokens",
            "4",
            "--bench-items",
            "1",
            "--game-episodes",
            "2",
            "--game-opponents",
            "random",
            "--plot",
            str(tmp_path / "panel.png"),
            "--json",
            str(out),
            "--out",
            str(tmp_path / "eval-run"),
        ],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == [spec, spec]
    acc = rows[1]["vs_first"]["instructions_pass_rate"]
    assert acc["delta"]["value"] == 0.0 and acc["test"] == "mcnemar-exact"  # same greedy model, same items
    assert rows[0]["metrics"]["instructions_pass_rate"]["n"] == 3
    # one panel: held-out instructions, arithmetic control, judge benchmark, game win rates
    names = set(rows[0]["metrics"])
    assert {"control_arithmetic_accuracy", "judge_bench_accuracy", "win_rate_vs_random"} <= names
    assert rows[1]["vs_first"]["win_rate_vs_random"]["delta"]["value"] == 0.0  # same games, same model
    assert (tmp_path / "panel.png").stat().st_size > 1000
    run = tmp_path / "eval-run"  # the run contract: run.yaml, records, metrics, report
    assert (run / "run.yaml").is_file() and (run / "report.html").is_file()
    assert len((run / "records" / "panel.jsonl").read_text().splitlines()) == 2
    assert '"eval_panel"' in (run / "metrics.jsonl").read_text()
