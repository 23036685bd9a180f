"""Every `selflab ...` command line shown in README.md and docs/*.md still parses, and for commands
whose flags come from a config model, its settings (config file, --set, flags) still validate.
Nothing runs: click parses the line, and `cli_options.dry_run()` stops a command after its config
is built."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from selflab.cli import app
from selflab.cli_options import dry_run

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Placeholders in the docs and a value that stands for each.
PLACEHOLDERS = {
    "<g>": "perudo",
    "NAME": "verified-sft",
    "RUN": "runs/x",
    "EPISODE": "0",
    "FAMILY": "arithmetic",
    "OLD": "old.yaml",
    "NEW": "new.yaml",
    "[FILE]": "",
    "GPU_HOST": "gpu",
    "HEAD_IP": "10.0.0.1",
}


def _clean(line: str) -> str | None:
    """The command of a doc line, or None: env assignments and `$ ` dropped, a usage table's
    description column and comments cut, placeholders filled in."""
    line = re.sub(r"^(\$ )?([A-Z_]+=\S+ )*", "", line.strip())
    if not line.startswith("selflab ") or "..." in line or "[--" in line:
        return None  # prose, or a usage summary
    line = re.split(r"\s{3,}", line)[0]
    line = line.replace("<g>", PLACEHOLDERS["<g>"])
    for key, value in PLACEHOLDERS.items():
        line = re.sub(rf"(?<![\w-]){re.escape(key)}(?![\w-])", value, line)
    return line.strip()


def documented_lines() -> list[tuple[str, str]]:
    """(where, command line) for each `selflab` line in a code block (fenced or indented; a
    trailing backslash joins the next line) and each inline `selflab ...` span with a flag."""
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        fenced = False
        i = 0
        while i < len(lines):
            raw = lines[i]
            i += 1
            if raw.lstrip().startswith("```"):
                fenced = not fenced
                continue
            candidates = []
            if fenced or raw.startswith("    "):
                line = raw.strip()
                while line.endswith("\\") and i < len(lines):
                    line = line[:-1] + " " + lines[i].strip()
                    i += 1
                candidates.append(line)
            else:
                candidates += [m for m in re.findall(r"`(selflab [^`]*)`", raw) if " -" in m]
            for line in candidates:
                cleaned = _clean(line)
                if cleaned:
                    found.append((f"{doc.name}: {cleaned}", cleaned))
    return found


LINES = documented_lines()


def parse(args: list[str]) -> tuple[Any, Any]:
    """Parse `args` down to the leaf (command, context); a bad line raises typer's UsageError."""
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("selflab", list(args))
    while hasattr(cmd, "resolve_command"):  # a group (typer vendors its own click)
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, name
        cmd, ctx = sub, sub.make_context(name or "", rest, parent=ctx)
    return cmd, ctx


def test_the_docs_show_command_lines() -> None:
    assert len(LINES) >= 40, [w for w, _ in LINES]


@pytest.mark.parametrize(("where", "line"), LINES, ids=[w[:90] for w, _ in LINES])
def test_documented_command_parses(where: str, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the docs name configs/*.yaml from the repository root
    args = shlex.split(line, comments=True)[1:]
    if "--help" in args:
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output, res.output
        return
    cmd, _ = parse(args)
    if getattr(cmd.callback, "selflab_config", None) is None:
        return  # a command without a config model: parsing is the check
    with dry_run() as seen:
        cmd.main(args=_leaf_args(args, cmd), prog_name="selflab", standalone_mode=False)
    assert seen, where


def _leaf_args(args: list[str], leaf: Any) -> list[str]:
    """The arguments after the leaf command's name (root options such as --verbose come first)."""
    idx = max(i for i, a in enumerate(args) if a == leaf.name)
    return args[idx + 1 :]
