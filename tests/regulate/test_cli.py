"""`selflab constitution` commands: bad input gets a clear one-line error, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selflab.cli", "constitution", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_show_starter_and_diff(tmp_path: Path) -> None:
    out = _cli("show")
    assert out.returncode == 0 and "P1. Help the user" in out.stdout
    from selflab.regulate.constitution import load_constitution

    c = load_constitution()
    edited = c.model_copy(update={"principles": c.principles[:-1], "version": 2})
    edited.save(tmp_path / "v2.yaml")
    c.save(tmp_path / "v1.yaml")
    d = _cli("diff", str(tmp_path / "v1.yaml"), str(tmp_path / "v2.yaml"))
    assert d.returncode == 0 and "-P8." in d.stdout


def test_malformed_constitution_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("principles:\n  - id: P1\n    text: fine principle\n  - id: X2\n    text: bad id\n")
    out = _cli("show", str(bad))
    assert out.returncode != 0
    assert "line 4" in out.stderr and "Traceback" not in out.stderr


def test_unknown_setting_is_a_clear_error(tmp_path: Path) -> None:
    out = _cli("debate", "--out", str(tmp_path / "x"), "--set", "no_such_key=1")
    assert out.returncode != 0 and "no_such_key" in out.stderr and "Traceback" not in out.stderr
