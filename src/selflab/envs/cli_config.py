"""Settings of `selflab play`, `tournament` and `baselines`: the flags are generated from these
models (help = the field description), and a YAML file with the same keys can be given as --config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

LLM_MODEL = "Model spec of the 'llm' agents: smollm2-135m, hf:/path, openai:MODEL@URL."


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlayConfig(_Settings):
    """One match-up played for a number of episodes."""

    game: str = Field(description="Game id or name, e.g. perudo-v0 or perudo (see `selflab games`).")
    agents: list[str] = Field(
        default_factory=lambda: ["scripted", "random"],
        description="Agent per seat: scripted, random, fuzz, llm (the --model), llm:<spec>.",
    )
    model: str | None = Field(None, description=LLM_MODEL)
    episodes: int = Field(10, ge=1, description="Episodes to play.")
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Game options (the --opt key=value flags), e.g. dice: 3."
    )
    concurrency: int = Field(64, ge=1, description="Episodes in flight at once.")
    max_new_tokens: int = Field(64, ge=1, description="Token budget of an LLM move.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of LLM moves.")
    rotate: bool = Field(True, description="Rotate agents through the seats between episodes.")


class TournamentConfig(_Settings):
    """A round-robin between agents."""

    game: str = Field(description="Game id or name, e.g. perudo-v0 or perudo (see `selflab games`).")
    agents: list[str] = Field(
        default_factory=lambda: ["scripted", "random"],
        description="Agents (at least two): scripted, random, fuzz, llm (the --model), llm:<spec>.",
    )
    model: str | None = Field(None, description=LLM_MODEL)
    episodes: int = Field(20, ge=1, description="Episodes per pair of agents.")
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Game options (the --opt key=value flags), e.g. dice: 3."
    )
    max_new_tokens: int = Field(64, ge=1, description="Token budget of an LLM move.")


class BaselinesConfig(_Settings):
    """Per game: scripted vs random and, with a model, the LLM vs scripted and vs random."""

    games: list[str] = Field(default_factory=list, description="Games (default: all), e.g. perudo,spy.")
    model: str | None = Field(
        None, description="Model spec to play against scripted (omit for scripted vs random only)."
    )
    episodes: int = Field(200, ge=1, description="Scripted-vs-random episodes per game.")
    llm_episodes: int = Field(16, ge=1, description="LLM-vs-scripted episodes per game.")
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")
    max_new_tokens: int = Field(48, ge=1, description="Token budget of an LLM move.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of LLM moves.")
    context_tokens: int = Field(1024, ge=256, description="LLM prompt budget; the oldest turns are dropped.")
    constraints: bool = Field(
        True, description="Decode LLM moves under each game's move grammar (or as free text)."
    )
    scripted: bool = Field(True, description="Include the scripted-vs-random rows.")
