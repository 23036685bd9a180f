"""Deal or No Deal agents: a conceding negotiator (the scripted baseline) and a random one."""

from __future__ import annotations

from functools import cache

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation
from selflab.envs.games.dealnodeal.game import allocations, complement, proposal_text, score
from selflab.envs.games.dealnodeal.instances import valid, value_vectors


@cache
def expected_other_values(
    counts: tuple[int, int, int], mine: tuple[int, int, int]
) -> tuple[float, float, float]:
    """The opponent's expected values per item under the instance generator's prior (uniform over
    the value vectors consistent with the pool and with ours)."""
    options = [v for v in value_vectors(counts) if valid(counts, mine, v)]
    if not options:
        return tuple(10 / sum(counts) for _ in counts)  # type: ignore[return-value]
    return tuple(sum(v[i] for v in options) / len(options) for i in range(3))  # type: ignore[return-value]


class DondNegotiator(ScriptedAgent):
    """Concedes gradually from its best split: its aspiration falls linearly from the best utility
    it can hope for to a floor over its turns; it accepts any offer at or above its current
    aspiration (or any offer better than no deal when time runs out) and otherwise proposes the
    split that meets its aspiration while leaving the opponent the most (estimated).

    Utility follows the objective: own score (semi), own plus the opponent's expected score
    (cooperative), own minus it (competitive), with the opponent's values estimated from the prior.
    """

    name = "scripted"

    def __init__(self, seed: int | None = None, name: str | None = None, floor: float = 0.5) -> None:
        super().__init__(seed, name)
        self.floor = floor  # fraction of the way from no-deal utility to the best utility kept at the end

    def decide(self, observation: Observation) -> str:
        s = observation.state
        counts: tuple[int, int, int] = tuple(s["counts"])  # type: ignore[assignment]
        values: tuple[int, int, int] = tuple(s["values"])  # type: ignore[assignment]
        other = expected_other_values(counts, values)
        objective = s["objective"]

        def utility(mine: tuple[int, ...]) -> float:
            own = score(values, mine)
            theirs = sum(e * x for e, x in zip(other, complement(counts, mine), strict=True))
            if objective == "cooperative":
                return own + theirs
            if objective == "competitive":
                return own - theirs
            return float(own)

        options = allocations(counts)
        best = max(utility(a) for a in options)
        no_deal = 0.0
        turns_left = s["max_turns"] - s["turn"]  # including this one
        # Progress through the game in [0, 1]: aspiration falls from `best` to the floor.
        progress = min(1.0, s["turn"] / max(1, s["max_turns"] - 2))
        floor = no_deal + self.floor * (best - no_deal)
        aspiration = best - (best - floor) * progress

        offer = s.get("offer")
        if offer is not None:
            u = utility(tuple(offer))
            last_chance = turns_left <= 2  # a counter-proposal could no longer be accepted in time
            if u >= aspiration - 1e-9 or (last_chance and u > no_deal):
                return "ACCEPT"
        acceptable = [a for a in options if utility(a) >= aspiration - 1e-9]
        # Most generous split (for the opponent, by estimate) that still meets the aspiration.
        choice = max(
            acceptable,
            key=lambda a: (
                sum(e * x for e, x in zip(other, complement(counts, a), strict=True)),
                utility(a),
                a,
            ),
        )
        return proposal_text(choice)


class DondRandom(RandomAgent):
    """Picks an action kind uniformly (say, propose, accept when an offer waits, reject), then
    random contents."""

    name = "random"

    _CHATTER = (
        "hello",
        "I really want the books",
        "hats are nice",
        "what do you value?",
        "let us make a deal",
    )

    def random_action(self, observation: Observation) -> str:
        s = observation.state
        kinds = ["say", "propose", "reject"] + (["accept"] if s.get("offer") is not None else [])
        kind = self.rng.choice(kinds)
        if kind == "say":
            return "SAY: " + self.rng.choice(self._CHATTER)
        if kind == "propose":
            return proposal_text(tuple(self.rng.randint(0, c) for c in s["counts"]))
        return kind.upper()

    def act(self, observation: Observation) -> str:
        return f"ACTION: {self.random_action(observation)}"
