"""Each command whose flags come from its config model: precedence file < --set < flag, the kept
aliases, and a clear ConfigError for a bad --set. Nothing heavy runs: `cli_options.dry_run()` makes
a command return right after building its config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selflab.cli import app
from selflab.cli_options import dry_run
from selflab.errors import ConfigError

# (command words, config field, its flag, three valid values: file, --set, flag)
COMMANDS = [
    (["play", "perudo"], "episodes", "--episodes", (3, 4, 5)),
    (["tournament", "perudo"], "episodes", "-n", (3, 4, 5)),
    (["baselines"], "llm_episodes", "--llm-episodes", (3, 4, 5)),
    (["bench", "judges"], "per_perturbation", "--per-perturbation", (3, 4, 5)),
    (["bench", "steps"], "injected_per_family", "--injected", (3, 4, 5)),
    (["stepwise", "search"], "width", "--width", (3, 4, 5)),
    (["probe", "sweep"], "n_boot", "--n-boot", (100, 200, 300)),
    (["probe", "generalize"], "n", "--n", (40, 50, 60)),
    (["probe", "guided"], "n_samples", "--n-samples", (3, 4, 5)),
    (["loop", "verified-sft"], "eval_tasks", "--eval-tasks", (3, 4, 5)),
    (["loop", "self-rewarding"], "iterations", "--iterations", (3, 4, 5)),
    (["constitution", "debate"], "seed", "--seed", (3, 4, 5)),
    (["constitution", "refine"], "iterations", "--iterations", (3, 4, 5)),
    (["eval", "-m", "smollm2-135m"], "n", "--n", (3, 4, 5)),
    (["train", "sft", "--data", "d.jsonl"], "max_steps", "--max-steps", (3, 4, 5)),
    (["generate", "prompts.txt"], "max_new_tokens", "--max-new-tokens", (3, 4, 5)),
]
IDS = [" ".join(c[0][:2]) for c in COMMANDS]


def built(args: list[str]) -> Any:
    """The config the command builds from `args` (it does not run)."""
    with dry_run() as seen:
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    assert len(seen) == 1, res.output
    return seen[0]


def failure(args: list[str]) -> BaseException | None:
    with dry_run():
        return CliRunner().invoke(app, args).exception


@pytest.mark.parametrize(("words", "field", "flag", "values"), COMMANDS, ids=IDS)
def test_precedence_file_then_set_then_flag(
    words: list[str], field: str, flag: str, values: tuple[int, int, int], tmp_path: Path
) -> None:
    f, s, x = values
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"loop: ignored-by-loops\n{field}: {f}\n" if words[0] == "loop" else f"{field}: {f}\n")
    assert getattr(built([*words, "--config", str(cfg)]), field) == f
    assert getattr(built([*words, "--config", str(cfg), "--set", f"{field}={s}"]), field) == s
    assert getattr(built([*words, "--config", str(cfg), "--set", f"{field}={s}", flag, str(x)]), field) == x


@pytest.mark.parametrize("words", [c[0] for c in COMMANDS], ids=IDS)
def test_bad_set_is_a_clear_config_error(words: list[str]) -> None:
    for bad, needle in (
        ("seed=lots", "seed"),
        ("no_such_setting=1", "no_such_setting"),
        ("oops", "KEY=VALUE"),
    ):
        exc = failure([*words, "--set", bad])
        assert isinstance(exc, ConfigError), (bad, exc)
        assert needle in exc.problem and exc.fix


@pytest.mark.parametrize("words", [c[0] for c in COMMANDS], ids=IDS)
def test_model_and_seed_are_shared_flags(words: list[str]) -> None:
    cfg = (
        built([*words, "-m", "hf:/x", "--seed", "7"])
        if words[0] != "eval"
        else built([*words, "--seed", "7"])
    )
    assert cfg.seed == 7
    model = getattr(cfg, "models", None) or [cfg.model]
    assert model[-1] == ("smollm2-135m" if words[0] == "eval" else "hf:/x")


def test_deprecated_aliases_still_work() -> None:
    assert built(["baselines", "--llm", "hf:/a", "-n", "7"]).model == "hf:/a"
    assert built(["baselines", "-n", "7"]).episodes == 7
    assert built(["eval", "--models", "a,b"]).models == ["a", "b"]
    assert built(["bench", "judges", "--limit", "5"]).limit == 5
    assert built(["bench", "judges", "-n", "6"]).limit == 6
    assert built(["probe", "guided", "--n-questions", "20"]).n_questions == 20
    assert built(["stepwise", "search", "--n", "6"]).n == 6
    assert built(["train", "sft", "--data", "d.jsonl", "--lr", "0.01"]).learning_rate == 0.01


def test_lists_repeated_flags_and_game_options() -> None:
    judges = built(["bench", "judges", "-j", "pairwise[fence=none,constrain=false]", "-j", "rubric"]).judges
    assert judges == ["pairwise[fence=none,constrain=false]", "rubric"]
    assert built(["bench", "judges", "--perturbations", "none"]).perturbations == []
    play = built(["play", "perudo", "-a", "scripted, fuzz", "--no-rotate", "--set", "env_kwargs.dice=3"])
    assert (play.agents, play.rotate, play.env_kwargs) == (["scripted", "fuzz"], False, {"dice": 3})
    assert built(["bench", "steps", "--judges", "likelihood"]).judges == ["likelihood"]


def test_help_texts_are_the_field_descriptions() -> None:
    text = CliRunner().invoke(app, ["bench", "judges", "--help"], env={"COLUMNS": "200"}).output
    assert "Units judged per perturbation and protocol" in text and "deprecated alias" in text
    text = CliRunner().invoke(app, ["loop", "verified-sft", "--help"], env={"COLUMNS": "200"}).output
    assert "--eval-tasks" in text and "--config" in text and "--resume" in text


def test_unknown_loop_names_the_loops() -> None:
    from selflab.errors import SelflabError

    exc = CliRunner().invoke(app, ["loop", "nope"]).exception
    assert isinstance(exc, SelflabError) and "verified-sft" in exc.fix


def test_results_on_stdout_progress_on_stderr(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "selflab.cli", "play", "perudo", "-a", "scripted,random", "-n", "2",
         "--out", str(tmp_path / "play")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "win rate" in res.stdout and "report:" not in res.stdout and "episodes recorded" not in res.stdout
    assert "report:" in res.stderr and "win rate" not in res.stderr


def test_usage_errors_print_no_traceback() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "selflab.cli", "play"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and "Missing argument" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("words", [c[0] for c in COMMANDS if c[0][0] != "generate"], ids=IDS[:-1])
def test_resume_needs_the_run_directory(words: list[str]) -> None:
    exc = failure([*words, "--resume"])
    assert isinstance(exc, ConfigError) and "--out" in exc.fix


def test_a_missing_required_setting_says_how_to_give_it() -> None:
    exc = failure(["train", "sft"])
    assert isinstance(exc, ConfigError) and "data" in exc.problem and "--set" in exc.fix
