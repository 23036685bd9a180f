"""Perudo baselines: a probabilistic scripted player and the uniform random player.

The scripted player computes, from its own dice, the probability that a bid is true (the unseen
dice are independent: each matches a face with p = 1/6, or 1/3 with ones wild). It challenges a
bid that is probably false and otherwise makes the raise most likely to be true, with a
`bluff` rate of deliberately optimistic raises. `bluff=0` never bluffs; the "bluffer" variant
bluffs often, the proposal's test of adapting to opponents who always or never bluff.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation


@lru_cache(maxsize=4096)
def prob_at_least(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def bid_probability(quantity: int, face: int, own: list[int], total: int, ones_wild: bool) -> float:
    """Probability that at least `quantity` dice on the table count as `face`, given own dice."""
    mine = sum(1 for d in own if d == face or (ones_wild and d == 1 and face != 1))
    unseen = total - len(own)
    p = 1 / 3 if ones_wild and face != 1 else 1 / 6
    return prob_at_least(quantity - mine, unseen, p)


class PerudoScripted(ScriptedAgent):
    """Challenge when the current bid is unlikely; otherwise raise to the most probable bid."""

    name = "scripted"

    def __init__(
        self, seed: int | None = None, name: str | None = None, threshold: float = 0.5, bluff: float = 0.1
    ) -> None:
        super().__init__(seed, name)
        self.threshold = threshold
        self.bluff = bluff

    def decide(self, observation: Observation) -> str:
        s = observation.state
        own: list[int] = s["dice"]
        total: int = s["total_dice"]
        wild: bool = s["ones_wild"]
        bid = s["bid"]
        faces = range(2 if wild else 1, 7)
        candidates = []
        for q in range(1, total + 1):
            for f in faces:
                if bid is None or q > bid[0] or (q == bid[0] and f > bid[1]):
                    candidates.append((bid_probability(q, f, own, total, wild), q, f))
        p_current = 1.0 if bid is None else bid_probability(bid[0], bid[1], own, total, wild)
        if bid is not None and (p_current < self.threshold or not candidates):
            return "challenge"
        if not candidates:  # pragma: no cover - an opening bid always exists
            return "challenge"
        # The smallest raise among the most probable ones: prefer probability, then low quantity.
        best_p = max(c[0] for c in candidates)
        risky = [c for c in candidates if 0.25 <= c[0] < self.threshold]
        if risky and self.rng.random() < self.bluff:
            # A bluff: a claim that is probably false but plausible enough to go unchallenged.
            choice = min(risky, key=lambda c: (c[1], c[2]))
        else:
            near_best = [c for c in candidates if c[0] >= best_p - 1e-9]
            # Among equally likely raises take the one that claims the most (pressure on the next player).
            choice = max(near_best, key=lambda c: (c[1], c[2]))
            if bid is not None and choice[0] < self.threshold and p_current < 0.75:
                return "challenge"
        return f"bid {choice[1]} {choice[2]}"


class PerudoRandom(RandomAgent):
    """Uniform over the legal moves (every higher bid, and challenge when there is a bid)."""

    name = "random"


class PerudoBluffer(PerudoScripted):
    """Bluffs on half of its raises."""

    name = "bluffer"

    def __init__(self, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(seed, name, threshold=0.5, bluff=0.5)


class PerudoCautious(PerudoScripted):
    """Never bluffs and challenges anything below even odds plus a margin."""

    name = "cautious"

    def __init__(self, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(seed, name, threshold=0.6, bluff=0.0)
