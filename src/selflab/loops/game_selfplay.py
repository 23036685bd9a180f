"""Game self-play: the model plays a text game against itself and a pool of opponents, and learns
from the outcomes.

Learning rules from the literature:
- filtered behaviour cloning (the Deal-or-No-Deal self-play paper): SFT on the learner's accepted
  moves from games it won (`keep: winners`) or from seats whose reward beat the batch average
  (`keep: above_average`);
- `spag` (SPAG's offline objective, without its importance-ratio clipping, KL term and general-SFT
  mix): weighted SFT on the WINNERS' turns only, each turn weighted gamma^(T - t) by its distance
  from the winner's last turn (turn-decayed reward; `spag_gamma`); the trainer honours the weights;
- outcome-labelled moves: KTO (moves of games above the average reward desirable, below
  undesirable, at the average dropped and counted) or DPO pairs built only from the LEARNER'S own
  moves: a refused attempt vs the accepted move of the same turn, and, for one identical history
  (prompt) met in a won and in a lost game, the move played in the won game over the other.

Evaluation opponents are never trained against: a scripted evaluation opponent may not share its
class with any training opponent (bluffer and cautious are scripted Perudo players with other
parameters, so they cannot train a model that is then scored against `scripted`).

Role-balanced weighting: each role (seat; in Taboo seat = attacker/defender, in Perudo the first
mover) contributes the same number of examples; smaller roles are upsampled with a seeded draw.

Per iteration:
  play      `episodes` training games, split evenly over the pool: `self` (the policy on both
            seats), `past` (a seeded earlier checkpoint; the base model counts; iteration 1 falls
            back to self) and any scripted agent of the game; seats rotate; all LLM moves of all
            games are batched by the env runner
  build     the training data above, with counts of every drop
  train     TRL SFT / KTO / DPO -> checkpoints/iter-<i>
  evaluate  FIXED scripted opponents (not in the training pool by default), fixed seeds, seats
            rotated, greedy policy: win rate and reward per opponent, invalid-action rate, move
            length, and the self-reward: the model's own probability that it won each game (asked
            after the game, scored by likelihood), with its gap to the real outcome. Bootstrap CIs;
            the same games at every iteration, so the tests against iteration 0 are paired.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field

from selflab.envs.agents import Agent
from selflab.envs.llm_agent import LLMAgent
from selflab.envs.registry import make_agent, spec
from selflab.envs.runner import EpisodeSpec, play, schedule
from selflab.envs.trajectories import EpisodeRecord
from selflab.errors import ConfigError
from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.game_data import LEARNER, SOLO, build_game_data, learner_seats
from selflab.loops.game_eval import eval_measures, learner_seat, primary_measure, self_assess
from selflab.models.types import LanguageModel
from selflab.training import (
    TrainConfig,
    dpo_rows,
    kto_rows,
    save_parquet,
    sft_rows,
)

_WORKER_SPECS: frozenset[str] = frozenset()  # the models a Ray worker process holds for play


class SeatAgents:
    """Agents for one episode: an LLM agent for every seat named in `models` (loaded here) or
    `specs` (built from spec strings, on a Ray worker), the registry's agents for the others.
    Picklable when `models` is None, so it can travel to workers without any weights."""

    def __init__(
        self,
        models: dict[str, LanguageModel] | None,
        specs: dict[str, str],
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        context_tokens: int,
    ) -> None:
        self.models, self.specs = models, specs
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.context_tokens = max_new_tokens, context_tokens

    def _models(self) -> dict[str, LanguageModel]:
        if self.models is not None:
            return self.models
        global _WORKER_SPECS
        from selflab.models import clear_cache, load_model

        if frozenset(self.specs.values()) != _WORKER_SPECS:  # a new iteration's policy: free the old
            clear_cache()
            _WORKER_SPECS = frozenset(self.specs.values())
        return {name: load_model(s) for name, s in self.specs.items()}

    def __call__(self, e: EpisodeSpec) -> list[Agent]:
        models = self._models()
        agents: list[Agent] = []
        for seat, name in enumerate(e.agents):
            seed = e.seed * 1000 + seat
            if name in models:
                agents.append(
                    LLMAgent(
                        models[name],
                        seed=seed,
                        name=name,
                        temperature=self.temperature,
                        top_p=self.top_p if self.temperature > 0 else 1.0,
                        max_new_tokens=self.max_new_tokens,
                        context_tokens=self.context_tokens,
                    )
                )
            else:
                agents.append(make_agent(e.env_id, name, seed=seed))
        return agents


Method = Literal["filtered_bc", "spag", "outcome_kto", "outcome_dpo"]


class GameSelfPlayConfig(LoopConfig):
    """Defaults: Perudo with 2 dice each against a pool; a few minutes per iteration on 2 CPU cores."""

    env_id: str = "perudo-small-v0"
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    episodes: int = Field(32, ge=1, description="training games per iteration, split over the pool")
    opponents: list[str] = Field(
        default_factory=lambda: ["self", "past"],
        description="training pool: self, past (earlier checkpoints) and scripted agent names",
    )
    eval_opponents: list[str] = Field(
        default_factory=lambda: ["random", "scripted"], description="FIXED opponents of the truth meter"
    )
    eval_episodes: int = Field(
        16, ge=2, description="evaluation games per fixed opponent (same seeds every iteration)"
    )
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    eval_temperature: float = Field(0.0, ge=0.0)
    max_new_tokens: int = Field(24, ge=4)
    context_tokens: int = Field(1024, ge=256)
    method: Method = "filtered_bc"
    keep: Literal["winners", "above_average"] = Field(
        "winners", description="filtered BC: whose moves to clone"
    )
    spag_gamma: float = Field(0.9, gt=0.0, le=1.0, description="spag: turn decay of the winners' moves")
    role_balance: bool = True
    self_assess: bool = Field(True, description="ask the model after each evaluation game whether it won")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            lora=True, learning_rate=2e-4, epochs=2, batch_size=8, max_length=1152
        )
    )


# -- the loop --------------------------------------------------------------------------------------


@register_loop
class GameSelfPlayLoop(Loop):
    name = "game-selfplay"
    description = "self-play vs self/past/scripted pool; filtered BC or SPAG-style outcome KTO/DPO; fixed-opponent truth meter"
    Config = GameSelfPlayConfig
    baseline_stages = ("evaluate",)
    stages = ("play", "build", "train", "evaluate")
    config: GameSelfPlayConfig

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        s = spec(self.config.env_id)  # fails early with the list of games
        need = self.config.context_tokens + self.config.max_new_tokens
        if self.config.train.max_length < need:
            raise ConfigError(
                f"train.max_length {self.config.train.max_length} < context_tokens + max_new_tokens = {need}: "
                "TRL would cut every game prompt and mask out the moves",
                f"set train.max_length >= {need} or lower context_tokens",
            )
        self.solo = s.make(**self.config.env_kwargs).num_players == 1
        self._check_solo()
        for name in [*self.config.eval_opponents, *self.config.opponents]:
            if name not in ("self", "past", SOLO) and name not in s.agents and name != "random":
                raise ConfigError(
                    f"{self.config.env_id} has no scripted agent {name!r}",
                    f"use self, past or one of {', '.join(sorted({*s.agents, 'random'}))}",
                )
        self._check_unseen_eval_opponents()

    def _check_solo(self) -> None:
        """A single-player puzzle (blocks) is played alone: `solo` is its only opponent, in training
        (expert iteration on solved puzzles) and in the truth meter (the solve rate on fixed seeds)."""
        c = self.config
        if self.solo and (set(c.opponents) - {"self", SOLO} or c.eval_opponents != [SOLO]):
            raise ConfigError(
                f"{c.env_id} is a single-player puzzle: it has no opponents to train or evaluate against",
                f"set opponents: [{SOLO}] and eval_opponents: [{SOLO}]",
            )
        if not self.solo and SOLO in [*c.opponents, *c.eval_opponents]:
            raise ConfigError(
                f"'{SOLO}' is only for single-player puzzles; {c.env_id} has several players",
                "use self, past, random or one of the game's scripted agents",
            )

    def _check_unseen_eval_opponents(self) -> None:
        """No evaluation opponent may have been trained against, by name or by class (a scripted
        player with other parameters is the same opponent to learn from)."""
        c = self.config

        def cls(name: str) -> type | None:
            if name in ("self", "past", SOLO):
                return None
            return type(make_agent(c.env_id, name, seed=0))

        train = {n: cls(n) for n in c.opponents}
        for e in c.eval_opponents:
            if e == SOLO:
                continue
            ec = cls(e)
            for n, tc in train.items():
                same = e == n or (
                    ec is not None and tc is not None and (issubclass(ec, tc) or issubclass(tc, ec))
                )
                if same:
                    raise ConfigError(
                        f"evaluation opponent {e!r} is (a variant of) training opponent {n!r}",
                        "evaluate against opponents the loop never trains against",
                    )

    def _agent_factory(self, models: dict[str, LanguageModel], temperature: float) -> Any:
        c = self.config
        return SeatAgents(models, {}, temperature, c.top_p, c.max_new_tokens, c.context_tokens)

    def training_schedule(self, iteration: int) -> tuple[list[EpisodeSpec], dict[str, str]]:
        """Episodes of this iteration and the model spec of every LLM seat name."""
        c = self.config
        rng = random.Random(self.seed_for("pool", iteration))
        models = {LEARNER: self.policy_spec(iteration)}
        specs: list[EpisodeSpec] = []
        k = len(c.opponents)
        for i, opp in enumerate(c.opponents):
            n = c.episodes // k + (1 if i < c.episodes % k else 0)
            if n == 0:
                continue
            if opp == "past" and iteration >= 2:
                j = rng.randrange(0, iteration - 1)  # any earlier iterate, the base model included
                name = f"past:iter-{j}"
                models[name] = self.model_after(j)
                seats = [LEARNER, name]
            elif opp == SOLO:
                seats = [LEARNER]
            elif opp in ("self", "past"):
                seats = [LEARNER, LEARNER]
            else:
                seats = [LEARNER, opp]
            seed = self.seed_for("play", iteration, opp) % 10**7
            specs += schedule(
                c.env_id, seats, n, seed=seed, env_kwargs=c.env_kwargs, prefix=f"it{iteration}-{opp}-"
            )
        return specs, models

    def _load_models(self, names: dict[str, str]) -> dict[str, LanguageModel]:
        from selflab.models import load_model

        out = {LEARNER: self.load(names[LEARNER])}
        for name, s in names.items():
            if name != LEARNER:
                out[name] = load_model(s)
        return out

    def stage_play(self, ctx: StageContext) -> None:
        c = self.config
        specs, names = self.training_schedule(ctx.iteration)
        executor = self.executor
        if executor.in_process:
            factory = self._agent_factory(self._load_models(names), c.temperature)
        else:  # Ray: each worker builds the seats' models itself, from their spec strings
            factory = SeatAgents(None, names, c.temperature, c.top_p, c.max_new_tokens, c.context_tokens)
        result = play(specs, concurrency=len(specs), agent_factory=factory, executor=executor)
        ctx.out.extend(result.episodes)
        seats = [(ep, s) for ep in result.episodes for s in learner_seats(ep)]
        ctx.info.update(
            episodes=len(result.episodes),
            learner_win_rate=round(sum(1 for ep, s in seats if s in ep.winners) / max(1, len(seats)), 4),
            learner_invalid=sum(ep.invalid(s) for ep, s in seats),
            learner_attempts=sum(ep.attempts(s) for ep, s in seats),
            model_calls=result.stats.model_calls,
            mean_batch=round(result.stats.mean_batch, 2),
            pool=",".join(sorted(names)),
        )
        for opp in c.opponents:
            eps = [ep for ep in result.episodes if f"-{opp}-" in ep.episode_id]
            s_ = [(ep, s) for ep in eps for s in learner_seats(ep)]
            if s_:
                ctx.info[f"train_win_rate_{opp}"] = round(
                    sum(1 for ep, s in s_ if s in ep.winners) / len(s_), 4
                )

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        data = build_game_data(
            self.read(ctx.iteration, "play", EpisodeRecord),
            c.method,
            c.keep,
            c.role_balance,
            seed=self.seed_for("build", ctx.iteration),
            gamma=c.spag_gamma,
        )
        method = self._train_method()
        if method == "sft":
            ctx.out.extend(data.sft)
            rows = sft_rows(data.sft)
        elif method == "kto":
            ctx.out.extend(data.kto)
            rows = kto_rows(data.kto)
            if rows and (data.counts.get("desirable", 0) == 0 or data.counts.get("undesirable", 0) == 0):
                ctx.info["skipped"] = "KTO needs both desirable and undesirable examples"
                rows = []
        else:
            ctx.out.extend(data.pairs)
            rows = dpo_rows(data.pairs)
        if rows:
            save_parquet(rows, ctx.data_path(method))
        ctx.info.update(data.counts)

    def _train_method(self) -> str:
        return {"filtered_bc": "sft", "spag": "sft", "outcome_kto": "kto", "outcome_dpo": "dpo"}[
            self.config.method
        ]

    def stage_train(self, ctx: StageContext) -> None:
        m = self._train_method()
        self.train_or_carry(ctx, m, ctx.data_path(m), self.config.train)

    def eval_schedule(self) -> dict[str, list[EpisodeSpec]]:
        c = self.config
        return {
            opp: schedule(
                c.env_id,
                [LEARNER] if opp == SOLO else [LEARNER, opp],
                c.eval_episodes,
                seed=self.seed_for("eval", opp) % 10**7,
                env_kwargs=c.env_kwargs,
                prefix=f"eval-{opp}-",
            )
            for opp in c.eval_opponents
        }

    def stage_evaluate(self, ctx: StageContext) -> None:
        c = self.config
        spec_ = self.model_after(ctx.iteration)
        model = self.load(spec_)
        plan = self.eval_schedule()
        specs = [e for eps in plan.values() for e in eps]
        result = play(
            specs,
            concurrency=len(specs),
            agent_factory=self._agent_factory({LEARNER: model}, c.eval_temperature),
        )
        by_id = {ep.episode_id: ep for ep in result.episodes}
        by_opp = {opp: [by_id[e.episode_id] for e in eps] for opp, eps in plan.items()}
        ordered = [ep for eps in by_opp.values() for ep in eps]
        ctx.out.extend(ordered)
        assessments = self_assess(model, ordered) if c.self_assess else None
        if assessments is not None:
            ctx.out.extend(assessments)  # after the episodes, in the same order
        ms = eval_measures(by_opp, assessments)
        info: dict[str, Any] = {}
        if ctx.iteration > 0:
            info = self.stage_infos(
                ctx.iteration,
                ["learner_win_rate", "learner_invalid", "learner_attempts", "examples", "steps", "train_loss",
                 *[f"train_win_rate_{o}" for o in c.opponents]],
            )  # fmt: skip
        ctx.info["wins"] = sum(1 for ep in ordered if learner_seat(ep) in ep.winners)
        self.meter.record(
            ctx.iteration, spec_, ms, info=info, gap=("self_assessed_win", primary_measure(self.solo))
        )
