"""Play episodes on an executor's workers (e.g. Ray): the hook behind `play(..., executor=...)`.

Each worker plays a chunk of episodes with the usual batched `play` (so LLM moves still share model
calls inside the chunk) and builds its agents, and their models, from spec strings. Only this
driver writes the run directory: an episode is appended to the log the moment its chunk comes
back, and an episode given up on (its worker died too often, or it crashed) goes to
`records/<log>.failures.jsonl`, not to the log, so `--resume` plays it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from selflab.envs.trajectories import EpisodeRecord
from selflab.execution import UnitFailure, UnitResult, map_units


@dataclass
class _Out:
    record: EpisodeRecord
    stats: dict[str, Any] | None  # the chunk's RunStats, carried by its first episode


class PlayChunk:
    """The unit function shipped to workers: play a list of `EpisodeSpec`s in one batched `play`."""

    def __init__(self, concurrency: int, agent_options: dict[str, Any] | None, agent_factory: Any) -> None:
        self.concurrency = concurrency
        self.agent_options = agent_options
        self.agent_factory = agent_factory

    def __call__(self, episodes: list[Any]) -> list[_Out]:
        from selflab.envs.runner import play

        result = play(
            episodes,
            concurrency=self.concurrency,
            agent_options=self.agent_options,
            agent_factory=self.agent_factory,
        )
        by_id = {r.episode_id: r for r in result.episodes}
        stats = {f.name: getattr(result.stats, f.name) for f in fields(result.stats)}
        return [_Out(by_id[e.episode_id], stats if i == 0 else None) for i, e in enumerate(episodes)]


def play_on(
    executor: Any,
    episodes: list[Any],
    *,
    concurrency: int,
    log_: Any,
    failures: Any,
    agent_options: dict[str, Any] | None,
    agent_factory: Any,
    stats: Any,
    bar: Any,
) -> list[EpisodeRecord]:
    """Play `episodes` on `executor`, recording on this driver; returns the finished records."""
    done: list[EpisodeRecord] = []
    t0 = time.perf_counter()

    def on_result(res: UnitResult) -> None:
        if not res.ok:
            if failures is not None:
                failures.append(
                    UnitFailure(
                        unit_id=res.unit_id, error=res.error or "", attempts=res.attempts, worker=res.worker
                    )
                )
            return
        out: _Out = res.value  # type: ignore[assignment]
        done.append(out.record)
        if log_ is not None:
            log_.append(out.record)
        if out.stats:
            for name in ("model_calls", "requests", "prompt_tokens", "completion_tokens"):
                setattr(stats, name, getattr(stats, name) + out.stats[name])
            stats.batch_sizes.extend(out.stats["batch_sizes"])
        stats.episodes += 1
        stats.wall_s = time.perf_counter() - t0
        bar.advance(stats)

    map_units(
        episodes,
        PlayChunk(concurrency, agent_options, agent_factory),
        executor,
        key=lambda e: e.episode_id,
        on_result=on_result,
    )
    return done
