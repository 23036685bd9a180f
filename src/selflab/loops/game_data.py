"""Training data from self-play episodes: which of the learner's moves are imitated or preferred,
for each method of the game self-play loop (filtered behaviour cloning, SPAG-style turn-decayed
winners' turns, outcome KTO and outcome DPO). Only accepted moves are ever imitated; roles are
balanced; every drop is counted."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from selflab.envs.trajectories import EpisodeRecord, to_dpo, to_sft
from selflab.errors import ConfigError
from selflab.models.types import Message
from selflab.training import KTOExample, PreferencePair, SFTExample

LEARNER = "learner"
SOLO = "solo"  # the "opponent" of a single-player puzzle (blocks): the learner plays alone


class GameData(BaseModel):
    """What `build_game_data` produced, with counts of every choice and drop."""

    sft: list[SFTExample] = Field(default_factory=list)
    kto: list[KTOExample] = Field(default_factory=list)
    pairs: list[PreferencePair] = Field(default_factory=list)
    counts: dict[str, float | int] = Field(default_factory=dict)


def learner_seats(ep: EpisodeRecord) -> list[int]:
    return [i for i, a in enumerate(ep.agents) if a == LEARNER]


def _messages(rows_messages: Sequence[dict[str, str]]) -> list[Message]:
    return [Message(role=m["role"], content=m["content"]) for m in rows_messages]  # type: ignore[arg-type]


def balance_roles(items: list[Any], role_of: Any, seed: int, counts: Counter[str]) -> list[Any]:
    """Upsample every role to the size of the largest one (seeded draw without replacement, then
    cycling), so each role contributes equally. Counts before and after go into `counts`."""
    by_role: dict[int, list[Any]] = defaultdict(list)
    for it in items:
        by_role[role_of(it)].append(it)
    if len(by_role) < 2:
        counts["roles_present"] = len(by_role)
        return list(items)
    rng = random.Random(seed)
    target = max(len(v) for v in by_role.values())
    out: list[Any] = []
    for role in sorted(by_role):
        group = by_role[role]
        counts[f"role{role}_examples"] = len(group)
        extra: list[Any] = []
        while len(group) + len(extra) < target:
            pool = list(group)
            rng.shuffle(pool)
            extra += pool[: target - len(group) - len(extra)]
        counts[f"role{role}_upsampled"] = len(extra)
        out += group + extra
    counts["roles_present"] = len(by_role)
    return out


def learner_outcome_pairs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """DPO pairs from the learner's own accepted moves only: for one identical history (the
    prompt messages) met in a won and in a lost game, the won game's move over the lost one's
    (distinct replies; each move used once)."""
    import json

    by_history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_history[json.dumps(r["messages"][:-1], sort_keys=True)].append(r)
    out = []
    for group in by_history.values():
        won = [r for r in group if r["won"]]
        lost = [r for r in group if not r["won"]]
        for w, lo in zip(won, lost, strict=False):
            if w["messages"][-1]["content"] == lo["messages"][-1]["content"]:
                continue
            out.append(
                {"prompt": w["messages"][:-1], "chosen": w["messages"][-1]["content"],
                 "rejected": lo["messages"][-1]["content"], "kind": "outcome", "episode_id": w["episode_id"],
                 "player": w["player"], "turn": w["turn"]}
            )  # fmt: skip
    return out


def build_game_data(
    episodes: Sequence[EpisodeRecord],
    method: str = "filtered_bc",
    keep: str = "winners",
    role_balance: bool = True,
    seed: int = 0,
    gamma: float = 0.9,
) -> GameData:
    """Training data from the learner's moves (agent name `learner`); only accepted moves are ever
    imitated. See the module docstring for the rules."""
    c: Counter[str] = Counter()
    eps = list(episodes)
    seats = [(ep, s) for ep in eps for s in learner_seats(ep)]
    c["episodes"] = len(eps)
    c["learner_seats"] = len(seats)
    c["learner_wins"] = sum(1 for ep, s in seats if s in ep.winners)
    rewards = [ep.reward(s) for ep, s in seats]
    mean = sum(rewards) / len(rewards) if rewards else 0.0
    rows = to_sft(eps, players="all", agents={LEARNER})
    # turn index of each learner move within its seat, and the seat's last one (for SPAG's decay)
    turn_of: dict[tuple[str, int], int] = Counter()
    for r in rows:
        key = (r["episode_id"], r["player"])
        r["turn"] = turn_of[key]
        turn_of[key] += 1
    for r in rows:
        r["won"] = (r["episode_id"], r["player"]) in {(ep.episode_id, w) for ep in eps for w in ep.winners}
    c["accepted_moves"] = len(rows)
    c["refused_or_defaulted_moves"] = sum(
        1 for ep in eps for st in ep.steps if st.agent == LEARNER and (st.error is not None or st.defaulted)
    )
    winners = {(ep.episode_id, w) for ep in eps for w in ep.winners}
    rng = random.Random(seed)
    out = GameData()
    if method == "filtered_bc":
        if keep == "winners":
            kept = [r for r in rows if (r["episode_id"], r["player"]) in winners]
        else:
            kept = [r for r in rows if r["reward"] > mean]
        c["dropped_moves"] = len(rows) - len(kept)
        if role_balance:
            kept = balance_roles(kept, lambda r: r["player"], seed, c)
        out.sft = [
            SFTExample(
                prompt=_messages(r["messages"][:-1]),
                response=r["messages"][-1]["content"],
                weight=1.0,
                source=f"game-{keep}",
                id=f"{r['episode_id']}:{r['player']}:{i}",
            )
            for i, r in enumerate(kept)
        ]
        rng.shuffle(out.sft)
    elif method == "spag":
        kept = [r for r in rows if r["won"]]
        c["dropped_moves"] = len(rows) - len(kept)
        if role_balance:
            kept = balance_roles(kept, lambda r: r["player"], seed, c)
        out.sft = [
            SFTExample(
                prompt=_messages(r["messages"][:-1]),
                response=r["messages"][-1]["content"],
                weight=round(gamma ** (turn_of[(r["episode_id"], r["player"])] - 1 - r["turn"]), 6),
                source="game-spag",
                id=f"{r['episode_id']}:{r['player']}:{i}",
            )
            for i, r in enumerate(kept)
        ]
        rng.shuffle(out.sft)
    elif method == "outcome_kto":
        labelled = []
        for r in rows:
            if math.isclose(r["reward"], mean):
                c["dropped_tie_with_mean"] += 1
                continue
            labelled.append((r, r["reward"] > mean))
        if role_balance:
            labelled = balance_roles(labelled, lambda x: x[0]["player"], seed, c)
        out.kto = [
            KTOExample(
                prompt=_messages(r["messages"][:-1]),
                response=r["messages"][-1]["content"],
                label=label,
                source="game-outcome",
                id=f"{r['episode_id']}:{r['player']}:{i}",
            )
            for i, (r, label) in enumerate(labelled)
        ]
        c["desirable"] = sum(1 for e in out.kto if e.label)
        c["undesirable"] = sum(1 for e in out.kto if not e.label)
        rng.shuffle(out.kto)
    elif method == "outcome_dpo":
        agent_at = {ep.episode_id: ep.agents for ep in eps}
        fmt = [r for r in to_dpo(eps, kinds=("format",)) if agent_at[r["episode_id"]][r["player"]] == LEARNER]
        prefs = fmt + learner_outcome_pairs(rows)
        c["format_pairs"] = sum(1 for r in prefs if r["kind"] == "format")
        c["outcome_pairs"] = sum(1 for r in prefs if r["kind"] == "outcome")
        if role_balance:
            prefs = balance_roles(prefs, lambda r: r["player"], seed, c)
        out.pairs = [
            PreferencePair(
                prompt=_messages(r["prompt"]),
                chosen=r["chosen"],
                rejected=r["rejected"],
                source=f"game-{r['kind']}",
                id=f"{r['episode_id']}:{r['player']}:{r['turn']}:{i}",
            )
            for i, r in enumerate(prefs)
        ]
        rng.shuffle(out.pairs)
    else:
        raise ConfigError(f"unknown method {method!r}", "use filtered_bc, spag, outcome_kto or outcome_dpo")
    c["examples"] = len(out.sft) + len(out.kto) + len(out.pairs)
    out.counts = dict(sorted(c.items()))
    out.counts["mean_learner_reward"] = round(mean, 4)
    return out
