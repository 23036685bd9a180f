"""The per-game reference table: scripted vs random, and an LLM vs scripted, with CIs.

Why: a game is only useful for self-play if its baselines are ordered (a sensible heuristic beats
random) and if one can see how far a model is from the heuristic and how often its moves are
invalid. Every game is played on one representative variant (the short ones, so LLM runs stay
affordable on a CPU). Two kinds of games:

- games with opponents (Perudo, Spy, debate, persuasion, Deal or No Deal, Taboo): the two agents
  share each table, seats rotated every episode, so both play every role equally often; the p-value is
  an exact two-sided binomial test on the episodes one of them won outright (`head_to_head`);
- one-player puzzles (detective, guess-the-person, blocks world): each agent plays the same seeded
  instances alone; the p-value is an exact two-sided sign test on the instances only one solved.

All matchups go through one `play` call, so the LLM moves of every game share the engine's batches;
episodes are recorded in the run directory and skipped on resume.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from selflab.envs.registry import spec
from selflab.envs.runner import EpisodeSpec, RunStats, play, schedule
from selflab.envs.tournament import AgentStats, binomial_p, head_to_head, summarize
from selflab.envs.trajectories import EpisodeRecord

# (game, variant) rows of the table, in the order the research plan lists the games.
VARIANTS: dict[str, str] = {
    "spy": "spy-quick-v0",
    "perudo": "perudo-small-v0",
    "detective": "detective-easy-v0",
    "guess-person": "guess-person-small-v0",
    "debate": "debate-factual-v0",
    "persuasion": "persuasion-v0",
    "blocks": "blocks-v0",
    "dealnodeal": "dealnodeal-comp-v0",
    "taboo": "taboo-short-v0",
}


@dataclass
class Matchup:
    """`a` against `b` (or `a` next to `b` on the same instances, for one-player games)."""

    game: str
    env_id: str
    a: str
    b: str
    episodes: int
    seed: int

    @property
    def prefix(self) -> str:
        """Start of this matchup's episode ids (unique across the whole table)."""
        return f"{self.game}:{self.a}|{self.b}:"

    @property
    def solo(self) -> bool:
        return _players(self.env_id) == 1


@dataclass
class MatchupResult:
    game: str
    env_id: str
    a: str
    b: str
    solo: bool
    episodes: int
    a_stats: AgentStats
    b_stats: AgentStats
    a_better: int  # episodes (or instances) where a beat b outright
    b_better: int
    p_value: float

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("a_stats", "b_stats")}
        for side, s in (("a", self.a_stats), ("b", self.b_stats)):
            lo, hi = s.ci
            out |= {f"{side}_win_rate": s.win_rate, f"{side}_ci": [lo, hi], f"{side}_invalid_rate": s.invalid_rate,
                    f"{side}_parse_rate": s.parse_rate, f"{side}_rule_rate": s.rule_rate,
                    f"{side}_attempts": s.attempts, f"{side}_mean_reward": s.mean_reward}  # fmt: skip
        return out


def _players(env_id: str) -> int:
    return spec(env_id).make().num_players


def specs_for(m: Matchup) -> list[EpisodeSpec]:
    """The episodes of one matchup; a solo game's ids end in a<i> or b<i> (which agent played)."""
    if m.solo:
        return [
            EpisodeSpec(f"{m.prefix}{side}{i:04d}", m.env_id, [agent], seed=m.seed + i)
            for side, agent in (("a", m.a), ("b", m.b))
            for i in range(m.episodes)
        ]
    kwargs = {"players": _players(m.env_id)} if "players" in spec(m.env_id).kwargs else {}
    return schedule(m.env_id, [m.a, m.b], m.episodes, seed=m.seed, env_kwargs=kwargs, prefix=m.prefix)


def analyse(m: Matchup, episodes: list[EpisodeRecord]) -> MatchupResult:
    mine = [e for e in episodes if e.episode_id.startswith(m.prefix)]
    if m.solo:
        # Same seeds for both agents: compare instance by instance.
        sides: dict[str, list[EpisodeRecord]] = {"a": [], "b": []}
        by_seed: dict[int, dict[str, bool]] = {}
        for e in mine:
            side = e.episode_id[len(m.prefix)]
            sides[side].append(e)
            by_seed.setdefault(int(e.seed or 0), {})[side] = 0 in e.winners
        a_better = sum(1 for r in by_seed.values() if r.get("a") and not r.get("b"))
        b_better = sum(1 for r in by_seed.values() if r.get("b") and not r.get("a"))
        stats_a = summarize(sides["a"]).get(m.a, AgentStats(m.a))
        stats_b = summarize(sides["b"]).get(m.b, AgentStats(m.b))
    else:
        stats = summarize(mine)
        stats_a, stats_b = stats.get(m.a, AgentStats(m.a)), stats.get(m.b, AgentStats(m.b))
        pair = head_to_head(mine).get(tuple(sorted((m.a, m.b))))  # type: ignore[arg-type]
        wins = {pair.a: pair.a_wins, pair.b: pair.b_wins} if pair else {}
        a_better, b_better = wins.get(m.a, 0), wins.get(m.b, 0)
    p = (
        binomial_p(a_better, a_better + b_better, 0.5, alternative="two-sided")
        if a_better + b_better
        else 1.0
    )
    n = len(mine) // 2 if m.solo else len(mine)
    return MatchupResult(m.game, m.env_id, m.a, m.b, m.solo, n, stats_a, stats_b, a_better, b_better, p)


def matchups(
    games: list[str], llm: str | None, episodes: int, llm_episodes: int, seed: int, scripted: bool = True
) -> list[Matchup]:
    """scripted vs random for every game (unless `scripted=False`), and, when an LLM spec is given,
    the LLM vs scripted and the LLM vs random."""
    unknown = [g for g in games if g not in VARIANTS]
    if unknown:
        from selflab.errors import ConfigError

        raise ConfigError(f"unknown game(s) {unknown}", f"choose from {', '.join(VARIANTS)}")
    out = [Matchup(g, VARIANTS[g], "scripted", "random", episodes, seed) for g in games] if scripted else []
    if llm:
        out += [
            Matchup(g, VARIANTS[g], f"llm:{llm}", b, llm_episodes, seed)
            for g in games
            for b in ("scripted", "random")
        ]
    return out


def run_baselines(
    todo: list[Matchup],
    run: Any = None,
    llm_options: dict[str, Any] | None = None,
    progress: bool = False,
    concurrency: int = 64,
    executor: Any = None,
) -> tuple[list[MatchupResult], RunStats]:
    """Play every matchup (one `play` call) and analyse each; writes `baselines.json` to the run.
    `executor`: where episodes run (see `selflab.execution`; default in process)."""
    specs = [s for m in todo for s in specs_for(m)]
    result = play(specs, concurrency=concurrency, run=run, progress=progress,
                  agent_options={"llm": llm_options or {}}, executor=executor)  # fmt: skip
    results = [analyse(m, result.episodes) for m in todo]
    if run is not None:
        (run.path / "baselines.json").write_text(
            json.dumps([r.row() for r in results], indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return results, result.stats
