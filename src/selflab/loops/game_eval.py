"""What the game self-play truth meter measures from finished games: win rate and reward per fixed
opponent (for a single-player puzzle: its solve rate and score), invalid-action rate, move length,
and the model's own post-game belief that it won (a self-reward, scored by likelihood), paired by
episode id across iterations."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel

from selflab.envs.trajectories import EpisodeRecord
from selflab.loops.game_data import LEARNER, SOLO, learner_seats
from selflab.loops.truth_meter import Measurement
from selflab.models.types import LanguageModel, Message, user


class SelfAssessment(BaseModel):
    episode_id: str
    seat: int
    won: bool
    p_win: float | None = None
    error: str | None = None


# -- pure data rules -------------------------------------------------------------------------------


def eval_measures(
    by_opponent: dict[str, list[EpisodeRecord]], assessments: list[SelfAssessment] | None
) -> list[Measurement]:
    """Per fixed opponent: win rate and reward of the learner seat; over all games: win (for the
    gap), invalid-action rate, move length, and the self-assessed win probability."""
    ms: list[Measurement] = []
    all_eps = [ep for eps in by_opponent.values() for ep in eps]
    all_ids = [ep.episode_id for ep in all_eps]
    solo = list(by_opponent) == [SOLO]
    for opp, eps in by_opponent.items():
        if opp == SOLO:
            continue  # a puzzle has no opponent: its one measure is the solve rate below
        ms.append(
            Measurement(
                name=f"win_rate_vs_{opp}",
                kind="objective",
                values=[learner_seat(ep) in ep.winners for ep in eps],
                ids=[ep.episode_id for ep in eps],
                description=f"games won against the fixed scripted '{opp}' opponent (seats rotated)",
            )
        )
        ms.append(
            Measurement(
                name=f"reward_vs_{opp}",
                kind="objective",
                values=[ep.reward(learner_seat(ep)) for ep in eps],
                ids=[ep.episode_id for ep in eps],
                description=f"learner's game reward against '{opp}'",
            )
        )
    ms.append(
        Measurement(
            name=primary_measure(solo),
            kind="objective",
            values=[learner_seat(ep) in ep.winners for ep in all_eps],
            ids=all_ids,
            description="puzzles solved (single-player game, fixed seeds)"
            if solo
            else "games won against all fixed opponents",
            primary=True,
        )
    )
    if solo:
        ms.append(
            Measurement(
                name="puzzle_score",
                kind="objective",
                values=[ep.reward(learner_seat(ep)) for ep in all_eps],
                ids=all_ids,
                description="the game's score: optimal moves / moves used when solved, else 0",
            )
        )
    ms.append(
        Measurement(
            name="invalid_action_rate",
            kind="objective",
            values=[ep.invalid(learner_seat(ep)) / max(1, ep.attempts(learner_seat(ep))) for ep in all_eps],
            ids=all_ids,
            higher_is_better=False,
            description="share of the learner's attempts the env refused (per game)",
        )
    )
    if assessments is not None:
        ms.append(
            Measurement(
                name="self_assessed_win",
                kind="self_reward",
                values=[a.p_win for a in assessments],
                ids=all_ids if len(assessments) == len(all_ids) else None,
                description="the model's own probability, asked after the game, that it won",
            )
        )
    ms.append(
        Measurement(
            name="move_tokens",
            kind="drift",
            values=[_move_tokens(ep) for ep in all_eps],
            ids=all_ids,
            higher_is_better=False,
            description="mean completion tokens per learner move (length drift)",
        )
    )
    return ms


def primary_measure(solo: bool) -> str:
    """The truth meter's primary measure: the solve rate of a puzzle, else the win rate over all
    fixed opponents."""
    return "solve_rate" if solo else "win_rate_fixed_opponents"


def learner_seat(ep: EpisodeRecord) -> int:
    seats = learner_seats(ep)
    if not seats:
        raise ValueError(f"{ep.episode_id} has no learner seat")
    return seats[0]


def _move_tokens(ep: EpisodeRecord) -> float:
    toks = [s.completion_tokens for s in ep.steps if s.agent == LEARNER]
    return sum(toks) / len(toks) if toks else 0.0


def assessment_prompt(ep: EpisodeRecord, seat: int, max_chars: int = 1200) -> list[Message]:
    """What the player saw at the end: the public messages and its private ones, tail-cut."""
    lines = []
    for m in ep.transcript:
        rec = m.get("recipients")
        if rec is None or seat in rec:
            lines.append(f"{m.get('sender')}: {m.get('text')}")
    text = "\n".join(lines)[-max_chars:]
    return [
        user(
            f"You were player {seat} in this game.\n{text}\n\nDid you (player {seat}) win the game? "
            "Answer Yes or No."
        )
    ]


def self_assess(model: LanguageModel, episodes: Sequence[EpisodeRecord]) -> list[SelfAssessment]:
    """P(win) = softmax over the likelihoods of "Yes" and "No"; a scoring failure is missing, not 0."""
    out = []
    for ep in episodes:
        seat = learner_seat(ep)
        a = SelfAssessment(episode_id=ep.episode_id, seat=seat, won=seat in ep.winners)
        try:
            ly, ln = model.score(assessment_prompt(ep, seat), ["Yes", "No"])
            a.p_win = 1.0 / (1.0 + math.exp(ln - ly))
        except Exception as err:  # noqa: BLE001 - a backend without scoring leaves the value missing
            a.error = f"{type(err).__name__}: {err}"
        out.append(a)
    return out
