"""benchmarks/baselines_table.py: the docs table rebuilt from run directories agrees with the CLI's
analysis, and a run cut before its end still gives its finished episodes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from selflab.envs.baselines import matchups, run_baselines
from selflab.runs import RunDir

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "baselines_table.py"


def _table_module():
    spec = importlib.util.spec_from_file_location("baselines_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_match_the_cli_analysis_and_survive_a_cut_run(tiny_model_spec: str, tmp_path: Path):
    options = {"max_new_tokens": 8, "temperature": 0.7, "context_tokens": 1024, "constrained": True}
    config = {"games": ["perudo", "blocks"], "llm": tiny_model_spec, "episodes": 1, "llm_episodes": 1,
              "seed": 0, "llm_options": options, "scripted": False}  # fmt: skip
    todo = matchups(config["games"], tiny_model_spec, 1, 1, 0, scripted=False)
    run = RunDir.create(tmp_path / "run", config=config, seed=0)
    results, _ = run_baselines(todo, run=run, llm_options=options)
    table = _table_module()
    rows = {game: (row, reasons) for game, constrained, row, reasons in table.rows(run.path)}
    assert set(rows) == {"perudo", "blocks"}
    for game in rows:
        row, _ = rows[game]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "on" and cells[-1] == "1 + 1"
        mine = [r for r in results if r.game == game]
        assert cells[2].startswith(f"{mine[0].a_stats.win_rate:.2f} [")
        attempts = sum(r.a_stats.attempts for r in mine)
        assert int(cells[7]) == attempts > 0
        parse = sum(r.a_stats.parse for r in mine) / attempts
        assert (
            f"/ {sum(r.a_stats.rule for r in mine) / attempts:.3f})" in cells[6]
            and f"({parse:.3f} /" in cells[6]
        )
    # A run cut by its timeout: only some episodes were written, and no baselines.json.
    log = run.path / "records" / "episodes.jsonl"
    kept = [x for x in log.read_text().splitlines() if json.loads(x)["episode_id"].startswith("perudo:")][:1]
    log.write_text("\n".join(kept) + "\n")
    (run.path / "baselines.json").unlink()
    cut = {game: row for game, _, row, _ in table.rows(run.path)}
    assert cut["perudo"].rstrip(" |").endswith("1 + 0") and "not reached" in cut["perudo"]
    assert cut["blocks"].rstrip(" |").endswith("0 + 0")
