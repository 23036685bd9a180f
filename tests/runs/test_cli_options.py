"""The shared CLI options: one parser for every --set/--opt, one precedence, clear errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from selflab.cli_options import build_config, default_out, parse_sets
from selflab.console import fit
from selflab.errors import ConfigError


class _Train(BaseModel):
    epochs: int = 1


class _Cfg(BaseModel):
    model: str = "smollm2-135m"
    seed: int = 0
    train: _Train = _Train()


def test_parse_sets_nested_and_yaml_values() -> None:
    assert parse_sets(["train.epochs=3", "seed=2", "name=a=b", "flag=true"]) == {
        "train": {"epochs": 3}, "seed": 2, "name": "a=b", "flag": True,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["oops"])


def test_build_config_precedence_file_then_set_then_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "c.yaml"
    f.write_text("seed: 5\ntrain:\n  epochs: 2\nmodel: a\n")
    cfg = build_config(_Cfg, f, ["seed=6"], model="b", seed=None)
    assert (cfg.seed, cfg.train.epochs, cfg.model) == (6, 2, "b")
    with pytest.raises(ConfigError, match="seed"):
        build_config(_Cfg, None, ["seed=x"])
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(_Cfg, tmp_path / "missing.yaml")


def test_default_out_is_fresh_per_command() -> None:
    p = default_out("probe-sweep")
    assert p.parts[0] == "runs" and p.name.startswith("probe-sweep-")


def test_fit_keeps_metric_names_whole_in_a_narrow_terminal() -> None:
    t = Table()
    for col in ("metric", "value [95% CI]", "Δ vs iter 0 [95% CI]", "p (test)"):
        t.add_column(col)
    t.add_row(
        "gap_self_minus_objective", "0.512 [0.401, 0.622] (n=40)", "-0.100 [-0.2, 0.0]", "0.03 (wilcoxon)"
    )
    console = Console(width=60, record=True)
    console.print(fit(t))
    text = console.export_text()
    assert "…" not in text and "metric" in text and "value" in text


class _Probe(BaseModel):
    model: str = "smollm2-135m"
    datasets: list[str] = ["a", "b"]
    n: int = 10
    dynamics: bool = True
    seed: int = 0


def test_config_options_generates_flags_from_the_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import typer
    from typer.testing import CliRunner

    from selflab.cli_options import config_options

    seen = {}
    app = typer.Typer()

    @app.command()
    @config_options(_Probe)
    def go(cfg: _Probe, out, resume) -> None:  # type: ignore[no-untyped-def]
        seen.update(cfg=cfg, out=out, resume=resume)

    f = tmp_path / "c.yaml"
    f.write_text("n: 5\nseed: 3\n")
    args = [
        "-c",
        str(f),
        "--set",
        "seed=4",
        "--datasets",
        "x, y",
        "--no-dynamics",
        "-m",
        "hf:/m",
        "--out",
        "o",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    cfg = seen["cfg"]
    assert (cfg.n, cfg.seed, cfg.datasets, cfg.dynamics, cfg.model) == (5, 4, ["x", "y"], False, "hf:/m")
    assert str(seen["out"]) == "o" and seen["resume"] is False
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "--datasets" in help_text and "--no-dynamics" in help_text and "--set" in help_text
