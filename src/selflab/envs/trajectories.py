"""Typed episode records, and their export as SFT and DPO data from each player's perspective.

Every attempt a player makes is one `StepRecord` (refused attempts too: they are the negative
examples), so a finished `EpisodeRecord` is enough to replay the game, score it again, or build
training data without re-running anything.

SFT: the moves of the chosen players (winners by default) that the env accepted, each as the chat
the player saw plus its reply. DPO, two kinds of pairs, both on one player's prompt:
- "format": a refused attempt and the same player's accepted reply in that turn (the accepted one
  was generated after the refusal, so its prompt had one more turn: an approximation, marked);
- "outcome": identical observations met in different episodes, where one player went on to win and
  the other lost with a different move.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, Field


class StepRecord(BaseModel):
    """One attempt by one player."""

    index: int
    turn: int
    player: int
    agent: str
    observation: str
    raw_output: str | None = None
    parsed_action: str
    applied_action: str | None = None
    error: dict[str, str] | None = None
    defaulted: bool = False
    prompt: list[dict[str, str]] | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0


class EpisodeRecord(BaseModel):
    """A finished episode: who sat where, what happened, how it ended."""

    episode_id: str
    env_id: str
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    agents: list[str]
    rules: str = ""
    rewards: dict[int, float]
    ranks: dict[int, int] = Field(default_factory=dict)
    winners: list[int] = Field(default_factory=list)
    outcome: str = ""
    turns: int = 0
    errors: dict[int, dict[str, int]] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)
    duration_s: float = 0.0

    def attempts(self, player: int) -> int:
        return sum(1 for s in self.steps if s.player == player)

    def invalid(self, player: int) -> int:
        return sum(1 for s in self.steps if s.player == player and s.error is not None)

    def reward(self, player: int) -> float:
        return float(self.rewards.get(player, 0.0))


def _prompt_of(episode: EpisodeRecord, step: StepRecord) -> list[dict[str, str]]:
    """The chat the player saw; for agents without a prompt (scripted), the rules and observation."""
    if step.prompt:
        return [dict(m) for m in step.prompt]
    return [
        {"role": "system", "content": episode.rules},
        {"role": "user", "content": step.observation},
    ]


def _reply_of(step: StepRecord) -> str:
    if step.raw_output:
        return step.raw_output
    return f"ACTION: {step.applied_action or step.parsed_action}"


def to_sft(
    episodes: list[EpisodeRecord], players: str = "winners", agents: set[str] | None = None
) -> list[dict[str, Any]]:
    """Rows {"messages", "episode_id", "player", "agent", "reward"} of accepted moves.

    `players`: "winners" (moves by the players who won), "all", or "nonlosers" (reward above the
    episode's minimum). `agents` keeps only moves by those agent names."""
    rows = []
    for ep in episodes:
        low = min(ep.rewards.values()) if ep.rewards else 0.0
        for step in ep.steps:
            if step.error is not None or step.defaulted:
                continue
            if players == "winners" and step.player not in ep.winners:
                continue
            if players == "nonlosers" and ep.reward(step.player) <= low:
                continue
            if agents is not None and step.agent not in agents:
                continue
            messages = [*_prompt_of(ep, step), {"role": "assistant", "content": _reply_of(step)}]
            rows.append(
                {"messages": messages, "episode_id": ep.episode_id, "player": step.player,
                 "agent": step.agent, "reward": ep.reward(step.player)}
            )  # fmt: skip
    return rows


def to_dpo(
    episodes: list[EpisodeRecord], kinds: tuple[str, ...] = ("format", "outcome")
) -> list[dict[str, Any]]:
    """Rows {"prompt" (chat messages), "chosen", "rejected", "kind", ...} (TRL's conversational
    preference format, prompt as a message list)."""
    rows: list[dict[str, Any]] = []
    if "format" in kinds:
        for ep in episodes:
            by_turn: dict[tuple[int, int], list[StepRecord]] = defaultdict(list)
            for step in ep.steps:
                by_turn[(step.turn, step.player)].append(step)
            for (turn, player), steps in by_turn.items():
                good = [s for s in steps if s.error is None and not s.defaulted and s.raw_output is not None]
                bad = [s for s in steps if s.error is not None and s.raw_output is not None]
                if not good:
                    continue
                for b in bad:
                    if b.raw_output == good[0].raw_output:
                        continue
                    rows.append(
                        {"prompt": _prompt_of(ep, b), "chosen": good[0].raw_output, "rejected": b.raw_output,
                         "kind": "format", "episode_id": ep.episode_id, "player": player, "turn": turn,
                         "reason": (b.error or {}).get("reason", ""), "approximate_prompt": True}
                    )  # fmt: skip
    if "outcome" in kinds:
        seen: dict[str, list[tuple[EpisodeRecord, StepRecord]]] = defaultdict(list)
        for ep in episodes:
            for step in ep.steps:
                if step.error is None and not step.defaulted:
                    seen[step.observation].append((ep, step))
        for _obs, group in seen.items():
            winners = [(e, s) for e, s in group if s.player in e.winners]
            losers = [(e, s) for e, s in group if e.winners and s.player not in e.winners]
            for (we, ws), (le, ls) in zip(winners, losers, strict=False):
                if (ws.applied_action or ws.parsed_action) == (ls.applied_action or ls.parsed_action):
                    continue
                rows.append(
                    {"prompt": _prompt_of(we, ws), "chosen": _reply_of(ws), "rejected": _reply_of(ls),
                     "kind": "outcome", "episode_id": we.episode_id, "rejected_episode_id": le.episode_id,
                     "player": ws.player, "turn": ws.turn, "reason": "", "approximate_prompt": False}
                )  # fmt: skip
    return rows
