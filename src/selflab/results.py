"""Turn a command's results into the run contract: typed metric rows and `report.html`.

Why a module above the producers: `envs/` computes win rates and ratings but sits below `runs/`;
this glue (used by the CLI commands) converts its results into `runs.metrics` rows, so that
`report/` and `selflab view` read runs without importing any producer.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selflab.runs import RunDir
from selflab.runs.metrics import AgentResult, GameMetrics, PairResult
from selflab.stats import proportion


def game_rows(
    command: str, episodes: Sequence[Any], wall_s: float | None = None, **info: Any
) -> list[GameMetrics]:
    """One `GameMetrics` row per env among `episodes` (EpisodeRecords): win rates with Wilson
    intervals, Elo, TrueSkill and head-to-head tests."""
    from selflab.envs.tournament import elo, head_to_head, summarize, trueskill_ratings

    by_env: dict[str, list[Any]] = {}
    for ep in episodes:
        by_env.setdefault(ep.env_id, []).append(ep)
    rows = []
    for env_id, eps in by_env.items():
        ratings, skill = elo(eps), trueskill_ratings(eps)
        agents = []
        for s in summarize(eps).values():
            mu, sigma = skill.get(s.agent, (None, None))
            agents.append(
                AgentResult(
                    agent=s.agent,
                    seats=s.seats,
                    wins=s.wins,
                    win_rate=proportion(s.wins, s.seats),
                    mean_reward=s.mean_reward,
                    invalid_rate=s.invalid_rate,
                    defaults=s.defaults,
                    mean_turns=s.mean_turns,
                    elo=ratings.get(s.agent),
                    trueskill_mu=mu,
                    trueskill_sigma=sigma,
                )  # fmt: skip
            )
        pairs = [
            PairResult(a=h.a, b=h.b, episodes=h.episodes, a_wins=h.a_wins, b_wins=h.b_wins, p_value=h.p_value)
            for h in head_to_head(eps).values()
        ]
        rows.append(
            GameMetrics(
                command=command,
                env_id=env_id,
                episodes=len(eps),
                agents=agents,
                pairs=pairs,
                wall_s=wall_s,
                info=dict(info),
            )  # fmt: skip
        )
    return rows


def finish(run: RunDir, rows: Sequence[Any] = ()) -> Path:
    """Append `rows` to metrics.jsonl, write report.html, and say where it is (on stderr)."""
    from selflab.report import write_report

    if rows:
        run.metrics.extend(rows)
    path = write_report(run)
    print(f"report: {path}", file=sys.stderr)
    return path
