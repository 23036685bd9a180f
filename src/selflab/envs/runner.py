"""Play many episodes at once so that every pending LLM move reaches the model in one call.

The loop is step-synchronous: each tick it advances every live episode until it waits on a
batchable (LLM) agent, collects those agents' requests across all episodes, sends them to each
model in ONE `generate` call (different models in parallel threads), and steps every episode with
its completion. Scripted moves cost nothing, so a tick's batch is as large as the number of live
episodes waiting on a model, which is what the batching engine needs to be fast.

Episodes are recorded as `EpisodeRecord`s in `<run>/records/episodes.jsonl` as they finish; with
a run directory, episodes already recorded are skipped (resume).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from selflab.envs.agents import Agent
from selflab.envs.core import Env, Observation, StepResult, extract_action
from selflab.envs.registry import make, make_agent, spec
from selflab.envs.trajectories import EpisodeRecord, StepRecord
from selflab.models.types import Completion, GenerationRequest

log = logging.getLogger(__name__)


@dataclass
class EpisodeSpec:
    """What to play: a variant, its options, a seed, and an agent spec per seat."""

    episode_id: str
    env_id: str
    agents: list[str]
    seed: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def schedule(
    env_id: str,
    agents: list[str],
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    rotate: bool = True,
    prefix: str = "ep",
) -> list[EpisodeSpec]:
    """`episodes` episodes with seeds seed, seed+1, ...; seats rotate each episode so every agent
    plays every seat equally often (fairness for games with a first-mover effect).

    With several agents and a variant that takes `players`, the table size is the number of agents."""
    kwargs = dict(env_kwargs or {})
    s = spec(env_id)
    if len(agents) > 1 and "players" in s.kwargs and "players" not in kwargs:
        kwargs["players"] = len(agents)
    probe = s.make(**kwargs)
    n = probe.num_players
    seats = [agents[i % len(agents)] for i in range(n)]
    out = []
    for i in range(episodes):
        k = i % n if rotate else 0
        out.append(
            EpisodeSpec(
                f"{prefix}{i:05d}", env_id, seats[-k:] + seats[:-k] if k else list(seats), seed + i, kwargs
            )
        )
    return out


def _batchable(agent: Agent) -> bool:
    return all(hasattr(agent, a) for a in ("prepare", "consume", "model"))


@dataclass
class _Live:
    spec: EpisodeSpec
    env: Env
    agents: list[Agent]
    steps: list[StepRecord] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def record(self, player: int, obs: Observation, action: str, result: StepResult) -> None:
        agent = self.agents[player]
        extra = agent.record() if hasattr(agent, "record") else {}
        self.steps.append(
            StepRecord(
                index=len(self.steps),
                turn=obs.turn,
                player=player,
                agent=getattr(agent, "name", type(agent).__name__),
                observation=str(obs),
                raw_output=extra.get("raw_output", action),
                parsed_action=extra.get("parsed_action", extract_action(action)),
                applied_action=result.action,
                error=None if result.error is None else result.error.to_dict(),
                defaulted=result.defaulted,
                prompt=extra.get("prompt"),
                prompt_tokens=extra.get("prompt_tokens", 0) or 0,
                completion_tokens=extra.get("completion_tokens", 0) or 0,
            )
        )

    def finish(self) -> EpisodeRecord:
        info = dict(self.env.info)
        return EpisodeRecord(
            episode_id=self.spec.episode_id,
            env_id=self.spec.env_id,
            env_kwargs=self.spec.env_kwargs,
            seed=self.spec.seed,
            agents=[getattr(a, "name", type(a).__name__) for a in self.agents],
            rules=self.env.rules,
            rewards=self.env.rewards,
            ranks=info.pop("ranks", {}),
            winners=info.pop("winners", []),
            outcome=info.pop("outcome", ""),
            turns=info.pop("turns", 0),
            errors=info.pop("errors", {}),
            steps=self.steps,
            transcript=[m.to_dict() for m in getattr(self.env, "messages", [])],
            info=_jsonable(info),
            duration_s=time.perf_counter() - self.started,
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (str, int)) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass
class RunStats:
    """What a `play` call measured."""

    episodes: int = 0
    wall_s: float = 0.0
    model_calls: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def mean_batch(self) -> float:
        return sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0

    @property
    def episodes_per_min(self) -> float:
        return 60.0 * self.episodes / self.wall_s if self.wall_s else 0.0


@dataclass
class PlayResult:
    episodes: list[EpisodeRecord]
    stats: RunStats


def build_agents(episode: EpisodeSpec, agent_options: dict[str, dict[str, Any]] | None = None) -> list[Agent]:
    """Fresh agents for one episode, seeded from the episode seed and seat."""
    options = agent_options or {}
    out = []
    for seat, name in enumerate(episode.agents):
        opts = options.get(name) or (options.get("llm", {}) if name.startswith("llm:") else {})
        out.append(make_agent(episode.env_id, name, seed=episode.seed * 1000 + seat, **opts))
    return out


def play(
    episodes: list[EpisodeSpec],
    *,
    concurrency: int = 64,
    run: Any = None,
    progress: bool = False,
    agent_options: dict[str, dict[str, Any]] | None = None,
    agent_factory: Callable[[EpisodeSpec], list[Agent]] | None = None,
    record_name: str = "episodes",
    executor: Any = None,
) -> PlayResult:
    """Play `episodes`, up to `concurrency` at a time, batching LLM moves across them.

    `run`: a `selflab.runs.RunDir`; finished episodes are appended to its `records/<record_name>.jsonl`
    and episodes already there are skipped. `agent_options` maps an agent spec (or "llm" for every
    llm:* spec) to options, e.g. {"llm": {"max_new_tokens": 32}}. `agent_factory` replaces the
    default construction (fresh agents from the registry) for custom agents. `executor`: a
    `selflab.execution` executor; a non-local one (Ray) plays chunks of episodes on its workers,
    and this process alone writes `run`."""
    done_records: list[EpisodeRecord] = []
    log_ = run.records(record_name) if run is not None else None
    if log_ is not None and log_.exists():
        previous = log_.read(EpisodeRecord)
        finished_ids = {r.episode_id for r in previous}
        done_records.extend(r for r in previous if r.episode_id in {e.episode_id for e in episodes})
        episodes = [e for e in episodes if e.episode_id not in finished_ids]
    factory = agent_factory or (lambda e: build_agents(e, agent_options))
    stats = RunStats()
    queue = deque(episodes)
    live: list[_Live] = []
    seen: dict[int, set[str]] = {}  # system prompts each model was sent (see `_leaders`)
    t0 = time.perf_counter()
    bar = _Progress(len(episodes), enabled=progress)
    try:
        if executor is not None and not executor.in_process:
            from selflab.envs.remote import play_on

            failures = run.records(f"{record_name}.failures") if run is not None else None
            done_records += play_on(executor, list(queue), concurrency=concurrency, log_=log_, failures=failures,
                                    agent_options=agent_options, agent_factory=agent_factory, stats=stats, bar=bar)  # fmt: skip
            queue.clear()
        while queue or live:
            while queue and len(live) < max(1, concurrency):
                live.append(_start(queue.popleft(), factory))
            pending: dict[int, list[tuple[_Live, int, Observation, GenerationRequest]]] = defaultdict(list)
            models: dict[int, Any] = {}
            for game in live:
                _advance_unbatched(game, pending, models)
            if pending:
                _generate_all(pending, models, stats, seen)
            still = []
            for game in live:
                if game.env.done:
                    record = game.finish()
                    done_records.append(record)
                    stats.episodes += 1
                    if log_ is not None:
                        log_.append(record)
                    bar.advance(stats)
                else:
                    still.append(game)
            live = still
    finally:
        bar.close()
    stats.wall_s = time.perf_counter() - t0
    order = {e.episode_id: i for i, e in enumerate(episodes)}
    done_records.sort(key=lambda r: order.get(r.episode_id, -1))
    return PlayResult(done_records, stats)


def _start(episode: EpisodeSpec, factory: Callable[[EpisodeSpec], list[Agent]]) -> _Live:
    env = make(episode.env_id, **episode.env_kwargs)
    env.reset(seed=episode.seed)
    agents = factory(episode)
    if len(agents) != env.num_players:
        raise ValueError(f"{episode.episode_id}: {len(agents)} agents for {env.num_players} seats")
    for seat, agent in enumerate(agents):
        begin = getattr(agent, "begin", None)
        if callable(begin):
            begin(env.rules, seat)
    return _Live(episode, env, agents)


def _advance_unbatched(
    game: _Live,
    pending: dict[int, list[tuple[_Live, int, Observation, GenerationRequest]]],
    models: dict[int, Any],
) -> None:
    """Play scripted moves until the episode ends or waits on a model."""
    while not game.env.done:
        player, obs = game.env.observe()
        agent = game.agents[player]
        if _batchable(agent):
            request = agent.prepare(obs)  # type: ignore[attr-defined]
            model = agent.model  # type: ignore[attr-defined]
            models[id(model)] = model
            pending[id(model)].append((game, player, obs, request))
            return
        try:
            action = agent.act(obs)
        except Exception as err:  # noqa: BLE001 - a broken agent loses its move, not the run
            log.exception("agent %s crashed in %s", getattr(agent, "name", agent), game.spec.episode_id)
            action = f"<agent error: {type(err).__name__}: {err}>"
        game.record(player, obs, action, game.env.step(action))


def _system_of(request: GenerationRequest) -> str | None:
    first = request.messages[0] if request.messages else None
    return first.content if first is not None and first.role == "system" else None


def _leaders(requests: list[GenerationRequest], seen: set[str]) -> list[int]:
    """One request per system prompt this model has not been sent yet, when other requests of the
    batch share it (else none).

    Why: a batch of fresh games all start with the same long rules text, and a server that caches
    prompt prefixes (vLLM, llama.cpp) computes it only for requests that arrive after one carrying
    it has been served; within one batch every row computes it again. Sending one leader first
    costs one small call per rules text; the rest of the batch then reads the rules from the cache.
    Not done for a model with `shares_prompt_starts` (our engine computes a start shared within
    one call once), where the extra call would only cost time."""
    first: dict[str, int] = {}
    shared: set[str] = set()
    for i, request in enumerate(requests):
        system = _system_of(request)
        if system is None or system in seen:
            continue
        if system in first:
            shared.add(system)
        else:
            first[system] = i
    seen.update(first)
    return [i for system, i in first.items() if system in shared]


def _generate_all(
    pending: dict[int, list[tuple[_Live, int, Observation, GenerationRequest]]],
    models: dict[int, Any],
    stats: RunStats,
    seen: dict[int, set[str]] | None = None,
) -> None:
    """One batched call per model (different models in parallel threads); `seen` holds the system
    prompts each model was already sent (see `_leaders`)."""
    seen = seen if seen is not None else {}
    sizes: dict[int, list[int]] = {}

    def generate(key: int, requests: list[GenerationRequest]) -> list[Completion]:
        sizes[key].append(len(requests))
        try:
            out = list(models[key].generate(requests))
        except Exception as err:  # noqa: BLE001 - recorded as failed moves; the episodes go on
            log.exception(
                "model %s failed on a batch of %d", getattr(models[key], "name", "?"), len(requests)
            )
            out = []
            failure = f"{type(err).__name__}: {err}"
        else:
            failure = "backend returned too few completions"
        while len(out) < len(requests):
            out.append(Completion(text="", finish_reason="error", error=failure))
        return out[: len(requests)]

    def call(key: int) -> list[Completion]:
        requests = [r for _, _, _, r in pending[key]]
        sizes[key] = []
        shares = getattr(models[key], "shares_prompt_starts", False) is True  # see `_leaders`
        lead = [] if shares else _leaders(requests, seen.setdefault(key, set()))
        if not lead:
            return generate(key, requests)
        rest = [i for i in range(len(requests)) if i not in set(lead)]
        out: dict[int, Completion] = dict(zip(lead, generate(key, [requests[i] for i in lead]), strict=True))
        out.update(zip(rest, generate(key, [requests[i] for i in rest]), strict=True))
        return [out[i] for i in range(len(requests))]

    keys = list(pending)
    if len(keys) == 1:
        results = {keys[0]: call(keys[0])}
    else:
        with ThreadPoolExecutor(max_workers=len(keys)) as pool:
            results = dict(zip(keys, pool.map(call, keys), strict=True))
    for key in keys:
        stats.model_calls += len(sizes[key])
        stats.batch_sizes.extend(sizes[key])
        for (game, player, obs, _), completion in zip(pending[key], results[key], strict=True):
            stats.requests += 1
            stats.prompt_tokens += completion.prompt_tokens
            stats.completion_tokens += completion.completion_tokens
            action = game.agents[player].consume(completion)  # type: ignore[attr-defined]
            game.record(player, obs, action, game.env.step(action))


class _Progress:
    """A rich progress bar over finished episodes (or nothing)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]episodes"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[extra]}"),
                console=Console(stderr=True),  # progress is a log, not a result
            )
            self._task = self._bar.add_task("play", total=total, extra="")
            self._bar.start()

    def advance(self, stats: RunStats) -> None:
        if self._bar is not None:
            extra = (
                f"model calls {stats.model_calls}, mean batch {stats.mean_batch:.1f}"
                if stats.model_calls
                else ""
            )
            self._bar.update(self._task, advance=1, extra=extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
