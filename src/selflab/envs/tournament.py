"""Tournaments and the statistics a claim like "agent A beats agent B" needs.

Round-robin (every pair of agents, seats rotated) or against a pool; ratings by Elo (averaged over
seeded orderings of the games, since sequential Elo depends on the order) and TrueSkill (the
`trueskill` package, which handles more than two players and ties); win rates with Wilson score
intervals and an exact binomial test.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from selflab.envs.runner import EpisodeSpec, PlayResult, play, schedule
from selflab.envs.trajectories import EpisodeRecord
from selflab.stats import binomial_p, wilson  # also imported from here by older callers


@dataclass
class AgentStats:
    """One agent's results over all the seats it played."""

    agent: str
    seats: int = 0
    wins: int = 0
    reward: float = 0.0
    attempts: int = 0
    invalid: int = 0
    parse: int = 0  # invalid attempts that could not be read
    rule: int = 0  # invalid attempts that were read but broke a rule
    defaults: int = 0
    turns: int = 0

    @property
    def win_rate(self) -> float:
        return self.wins / self.seats if self.seats else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.wins, self.seats)

    @property
    def invalid_rate(self) -> float:
        return self.invalid / self.attempts if self.attempts else 0.0

    @property
    def parse_rate(self) -> float:
        return self.parse / self.attempts if self.attempts else 0.0

    @property
    def rule_rate(self) -> float:
        return self.rule / self.attempts if self.attempts else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward / self.seats if self.seats else 0.0

    @property
    def mean_turns(self) -> float:
        return self.turns / self.seats if self.seats else 0.0

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci
        return {
            "agent": self.agent, "seats": self.seats, "wins": self.wins, "win_rate": self.win_rate,
            "ci_low": lo, "ci_high": hi, "mean_reward": self.mean_reward, "invalid_rate": self.invalid_rate,
            "parse_rate": self.parse_rate, "rule_rate": self.rule_rate,
            "defaults": self.defaults, "mean_turns": self.mean_turns,
        }  # fmt: skip


def summarize(episodes: list[EpisodeRecord]) -> dict[str, AgentStats]:
    """Per agent name: seats played, wins (a seat among the winners), reward, invalid-action rate."""
    stats: dict[str, AgentStats] = {}
    for ep in episodes:
        for seat, name in enumerate(ep.agents):
            s = stats.setdefault(name, AgentStats(name))
            s.seats += 1
            s.wins += int(seat in ep.winners)
            s.reward += ep.reward(seat)
            s.attempts += ep.attempts(seat)
            s.invalid += ep.invalid(seat)
            kinds = [st.error.get("kind") for st in ep.steps if st.player == seat and st.error is not None]
            s.parse += kinds.count("parse")
            s.rule += kinds.count("rule")
            s.defaults += ep.errors.get(seat, {}).get("defaults", 0)
            s.turns += ep.turns
    return stats


def _agent_ranks(ep: EpisodeRecord) -> dict[str, int]:
    """Each distinct agent's best seat rank in an episode (0 = best)."""
    ranks = ep.ranks or {p: (0 if p in ep.winners else 1) for p in range(len(ep.agents))}
    out: dict[str, int] = {}
    for seat, name in enumerate(ep.agents):
        r = int(ranks.get(seat, len(ep.agents)))
        out[name] = min(r, out.get(name, r))
    return out


def elo(
    episodes: list[EpisodeRecord], k: float = 16.0, base: float = 1500.0, orderings: int = 20, seed: int = 0
) -> dict[str, float]:
    """Elo from pairwise results between distinct agents in each episode, averaged over `orderings`
    seeded shuffles of the episodes (removes the order dependence of sequential Elo)."""
    names = sorted({n for ep in episodes for n in ep.agents})
    results = [_agent_ranks(ep) for ep in episodes]
    total = {n: 0.0 for n in names}
    rng = random.Random(seed)
    for o in range(max(1, orderings)):
        order = list(range(len(results)))
        if o:
            rng.shuffle(order)
        rating = {n: base for n in names}
        for i in order:
            ranks = results[i]
            for a, b in itertools.combinations(sorted(ranks), 2):
                score = 0.5 if ranks[a] == ranks[b] else (1.0 if ranks[a] < ranks[b] else 0.0)
                expected = 1 / (1 + 10 ** ((rating[b] - rating[a]) / 400))
                rating[a] += k * (score - expected)
                rating[b] -= k * (score - expected)
        for n in names:
            total[n] += rating[n]
    return {n: total[n] / max(1, orderings) for n in names}


def trueskill_ratings(episodes: list[EpisodeRecord]) -> dict[str, tuple[float, float]]:
    """TrueSkill (mu, sigma) per agent; each distinct agent in an episode is one team of one,
    ranked by its best seat. Episodes with one distinct agent carry no information and are skipped."""
    import trueskill

    env = trueskill.TrueSkill(draw_probability=0.1)
    ratings: dict[str, Any] = {}
    for ep in episodes:
        ranks = _agent_ranks(ep)
        if len(ranks) < 2:
            continue
        names = sorted(ranks)
        groups = [(ratings.setdefault(n, env.create_rating()),) for n in names]
        new = env.rate(groups, ranks=[ranks[n] for n in names])
        for n, (r,) in zip(names, new, strict=True):
            ratings[n] = r
    return {n: (float(r.mu), float(r.sigma)) for n, r in ratings.items()}


@dataclass
class HeadToHead:
    a: str
    b: str
    episodes: int = 0
    a_wins: int = 0
    b_wins: int = 0

    @property
    def decided(self) -> int:
        return self.a_wins + self.b_wins

    @property
    def a_rate(self) -> float:
        return self.a_wins / self.decided if self.decided else 0.5

    @property
    def p_value(self) -> float:
        """Exact two-sided binomial test of a_wins among decided games against 1/2."""
        return binomial_p(self.a_wins, self.decided, 0.5, alternative="two-sided")


def head_to_head(episodes: list[EpisodeRecord]) -> dict[tuple[str, str], HeadToHead]:
    """Pairwise wins between distinct agents (an agent wins a pair when it ranks strictly better)."""
    out: dict[tuple[str, str], HeadToHead] = {}
    for ep in episodes:
        ranks = _agent_ranks(ep)
        for a, b in itertools.combinations(sorted(ranks), 2):
            h = out.setdefault((a, b), HeadToHead(a, b))
            h.episodes += 1
            if ranks[a] < ranks[b]:
                h.a_wins += 1
            elif ranks[b] < ranks[a]:
                h.b_wins += 1
    return out


@dataclass
class TournamentResult:
    episodes: list[EpisodeRecord]
    stats: dict[str, AgentStats]
    elo: dict[str, float]
    trueskill: dict[str, tuple[float, float]]
    pairs: dict[tuple[str, str], HeadToHead]
    runs: list[PlayResult] = field(default_factory=list)

    def leaderboard(self) -> list[dict[str, Any]]:
        rows = []
        for name, s in self.stats.items():
            mu, sigma = self.trueskill.get(name, (float("nan"), float("nan")))
            rows.append({**s.to_dict(), "elo": self.elo.get(name, float("nan")), "trueskill_mu": mu,
                         "trueskill_sigma": sigma, "conservative": mu - 3 * sigma})  # fmt: skip
        return sorted(rows, key=lambda r: -r["conservative"] if not math.isnan(r["conservative"]) else 0.0)


def _result(episodes: list[EpisodeRecord], runs: list[PlayResult]) -> TournamentResult:
    return TournamentResult(episodes, summarize(episodes), elo(episodes), trueskill_ratings(episodes),
                            head_to_head(episodes), runs)  # fmt: skip


def round_robin(
    env_id: str,
    agents: list[str],
    episodes_per_pair: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    **play_options: Any,
) -> TournamentResult:
    """Every pair of agents plays `episodes_per_pair` episodes (seats rotated, tables of more than
    two seats filled alternately). All pairs' episodes run concurrently in one `play` call."""
    specs: list[EpisodeSpec] = []
    for i, (a, b) in enumerate(itertools.combinations(agents, 2)):
        specs += schedule(env_id, [a, b], episodes_per_pair, seed=seed + 100_000 * i,
                          env_kwargs=_two_sided(env_id, env_kwargs), prefix=f"rr{i}-")  # fmt: skip
    result = play(specs, **play_options)
    return _result(result.episodes, [result])


def vs_pool(
    env_id: str,
    candidate: str,
    pool: list[str],
    episodes_per_opponent: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    **play_options: Any,
) -> TournamentResult:
    """`candidate` against each pool member."""
    specs: list[EpisodeSpec] = []
    for i, opp in enumerate(pool):
        specs += schedule(env_id, [candidate, opp], episodes_per_opponent, seed=seed + 100_000 * i,
                          env_kwargs=_two_sided(env_id, env_kwargs), prefix=f"pool{i}-")  # fmt: skip
    result = play(specs, **play_options)
    return _result(result.episodes, [result])


def _two_sided(env_id: str, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Keep the variant's table size: `schedule` would otherwise shrink it to two players."""
    from selflab.envs.registry import spec

    kwargs = dict(env_kwargs or {})
    s = spec(env_id)
    if "players" in s.kwargs and "players" not in kwargs:
        kwargs["players"] = s.kwargs["players"]
    return kwargs
