"""The judge benchmark's settings: one `BenchConfig` (saved in run.yaml) and its checks, kept apart
so that units, judging and the run can all read it without importing each other."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from selflab.errors import ConfigError
from selflab.evalbench.perturbations import ALL_NAMES


class BenchConfig(BaseModel):
    """Everything that defines a benchmark run (saved in run.yaml)."""

    model: str = Field("smollm2-135m", description="Model spec of the judges.")
    judges: list[str] = Field(
        default_factory=lambda: ["rubric", "pairwise"],
        description="Judge kinds: rubric, pairwise, likelihood, jury:seeds:N, jury:personas:N, debate, ...; "
        "options in brackets, e.g. 'pairwise[fence=none,constrain=false]' (see `selflab judge --list-options`).",
    )
    limit: int = Field(12, ge=1, description="Benchmark items (shipped: 320; more are generated).")
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")
    perturbations: list[str] = Field(
        default_factory=lambda: list(ALL_NAMES),
        description=f"Perturbations, 'all' or 'none': {', '.join(ALL_NAMES)}.",
    )
    per_perturbation: int = Field(6, ge=1, description="Units judged per perturbation and protocol.")
    cot: bool = Field(False, description="Let judges reason before the verdict (slow on CPU).")
    max_new_tokens: int | None = Field(
        None, description="Judges' token budget (default: 8 direct, 256 with --cot)."
    )
    majority: bool = Field(True, description="Run the majority-vote study.")
    majority_items: int = Field(4, ge=1, description="Items whose candidates the majority study judges.")
    ablate_defences: bool = Field(
        False, description="Also run each judge with its verdict constraint and injection fence off."
    )
    jury_sizes: list[int] = Field(
        default_factory=lambda: [1, 3, 5, 9], description="Jury sizes of the majority study."
    )
    n_boot: int = Field(1000, ge=1, description="Bootstrap resamples of each interval.")

    @field_validator("perturbations", mode="before")
    @classmethod
    def _all_or_none(cls, value: Any) -> Any:
        """`all` / `none` (alone) stand for every perturbation / no perturbation."""
        if value in ("all", ["all"]):
            return list(ALL_NAMES)
        return [] if value in ("none", ["none"]) else value


def check_config(config: BenchConfig) -> None:
    bad = [p for p in config.perturbations if p not in ALL_NAMES]
    if bad:
        raise ConfigError(f"unknown perturbations {bad}", f"choose from {', '.join(ALL_NAMES)}")
    if not config.judges:
        raise ConfigError(
            "no judge given", "pass --judge rubric (or pairwise, likelihood, jury:seeds:3, ...)"
        )
    # Checked here, before any judging: the majority study runs last and would fail after the
    # expensive part of the run (max() of no sizes, a jury of 0 or -1 jurors).
    if config.majority and (not config.jury_sizes or min(config.jury_sizes) < 1):
        raise ConfigError(
            f"jury sizes {config.jury_sizes} must be one or more sizes of at least 1",
            "pass e.g. jury_sizes=[1, 3, 5, 9], or --no-majority to skip the majority study",
        )
    if config.max_new_tokens is not None and config.max_new_tokens < 1:
        raise ConfigError(
            f"max_new_tokens {config.max_new_tokens} must be at least 1",
            "pass a positive token budget, or leave it unset (8 direct, 256 with --cot)",
        )
