"""The per-game baseline table: matchup scheduling, solo vs table games, tests, resume, LLM rows."""

from __future__ import annotations

import json

import pytest

from selflab.envs.baselines import Matchup, matchups, run_baselines, specs_for
from selflab.errors import ConfigError
from selflab.runs import RunDir


def test_table_game_rotates_seats_and_solo_game_replays_the_same_seeds():
    table = specs_for(Matchup("perudo", "perudo-small-v0", "scripted", "random", 4, seed=3))
    assert [s.agents for s in table] == [["scripted", "random"], ["random", "scripted"]] * 2
    solo = specs_for(Matchup("blocks", "blocks-v0", "scripted", "random", 3, seed=3))
    assert [s.agents for s in solo] == [["scripted"]] * 3 + [["random"]] * 3
    assert [s.seed for s in solo] == [3, 4, 5] * 2
    assert len({s.episode_id for s in table + solo}) == 10


def test_scripted_beats_random_and_resume_plays_nothing_new(tmp_path):
    todo = matchups(["perudo", "blocks"], None, episodes=30, llm_episodes=1, seed=0)
    run = RunDir.create(tmp_path / "run", config={}, seed=0)
    results, stats = run_baselines(todo, run=run)
    by_game = {r.game: r for r in results}
    perudo, blocks = by_game["perudo"], by_game["blocks"]
    assert perudo.episodes == 30 and not perudo.solo and perudo.a_stats.seats == 30
    assert perudo.a_better + perudo.b_better == 30 and perudo.p_value < 0.01
    assert blocks.solo and blocks.episodes == 30 and blocks.a_stats.seats == blocks.b_stats.seats == 30
    assert blocks.a_stats.wins - blocks.b_stats.wins == blocks.a_better - blocks.b_better
    assert blocks.p_value < 1e-6
    rows = json.loads((run.path / "baselines.json").read_text())
    assert {r["game"] for r in rows} == {"perudo", "blocks"} and rows[0]["a_ci"][0] <= rows[0]["a_win_rate"]
    again, stats2 = run_baselines(todo, run=RunDir.create(tmp_path / "run", config={}, seed=0, resume=True))
    assert stats2.episodes == 0
    assert [r.row() for r in again] == [r.row() for r in results]


def test_unknown_game_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown game"):
        matchups(["chess"], None, 1, 1, 0)


def test_llm_rows_record_invalid_actions(tiny_model_spec: str):
    todo = [m for m in matchups(["perudo"], tiny_model_spec, 2, 2, 0) if m.a.startswith("llm:")]
    assert [m.b for m in todo] == ["scripted", "random"]
    results, stats = run_baselines(todo[:1], llm_options={"max_new_tokens": 8, "constrained": False})
    r = results[0]
    assert r.a == f"llm:{tiny_model_spec}" and r.episodes == 2
    assert r.a_stats.attempts > 0 and r.a_stats.invalid_rate > 0.5  # a random model rarely makes a legal bid
    assert r.a_stats.parse_rate > 0.5 and stats.model_calls > 0


def test_constrained_llm_makes_no_invalid_move(tiny_model_spec: str):
    """With the move grammar, even the random tiny model only writes legal moves: Perudo's grammar
    expresses every rule, so there are no parse errors and no rule violations either."""
    todo = [m for m in matchups(["perudo", "blocks"], tiny_model_spec, 1, 2, 0) if m.a.startswith("llm:")]
    results, _ = run_baselines(todo[::2], llm_options={"max_new_tokens": 16})
    for r in results:
        assert r.a_stats.attempts > 0 and r.a_stats.invalid == 0, r.row()
