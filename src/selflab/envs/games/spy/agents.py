"""Spy game baselines.

Scripted citizen: knows the location, so it checks every recorded answer against the truth; a
wrong answer raises the answerer's suspicion a lot, a right one lowers it a little. It questions
the most suspected player with ambiguous questions (true for about half the locations, so the
spy learns little) and votes for its top suspect.

Scripted spy: keeps a belief over locations, updated from citizens' answers (with a noise rate,
since answers can be wrong); answers questions with the belief-weighted majority, asks the
question that best splits its belief, and guesses once one location is likely enough.

Random: uniform over the legal moves.
"""

from __future__ import annotations

import math

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation
from selflab.envs.games.spy.locations import load_data

_ATTRS: dict[str, set[str]] = {loc["name"]: set(loc["attributes"]) for loc in load_data()["locations"]}


class SpyScripted(ScriptedAgent):
    name = "scripted"

    def __init__(
        self, seed: int | None = None, name: str | None = None, noise: float = 0.15, guess_at: float = 0.6
    ) -> None:
        super().__init__(seed, name)
        self.noise = noise
        self.guess_at = guess_at

    # ----------------------------------------------------------------- beliefs

    def belief(self, s: dict, me: int) -> dict[str, float]:
        """Posterior over locations from answers by other players (spy's view)."""
        logp = {loc: 0.0 for loc in s["locations"]}
        for qa in s["qa"]:
            if qa["attribute"] is None or qa["target"] == me or "answer" not in qa:
                continue
            for loc in logp:
                truth = "yes" if qa["attribute"] in _ATTRS.get(loc, set()) else "no"
                logp[loc] += math.log(1 - self.noise if truth == qa["answer"] else self.noise)
        top = max(logp.values())
        w = {loc: math.exp(v - top) for loc, v in logp.items()}
        z = sum(w.values())
        return {loc: v / z for loc, v in w.items()}

    def suspicion(self, s: dict, me: int) -> dict[int, float]:
        """Per other player: how badly its answers fit the location (known, or the spy's best guess)."""
        location = s["location"]
        if location is None:
            b = self.belief(s, me)
            location = max(b, key=lambda k: (b[k], k))
        score = {p: 0.0 for p in range(s["players"]) if p != me}
        for qa in s["qa"]:
            p = qa["target"]
            if p == me or qa["attribute"] is None or "answer" not in qa:
                continue
            truth = "yes" if qa["attribute"] in _ATTRS.get(location, set()) else "no"
            score[p] += 1.0 if qa["answer"] != truth else -0.3
        return score

    def _top(self, score: dict[int, float]) -> int:
        best = max(score.values())
        return self.rng.choice(sorted(p for p, v in score.items() if v == best))

    # ----------------------------------------------------------------- moves

    def decide(self, observation: Observation) -> str:
        s = observation.state
        me = observation.player
        phase = s["phase"]
        spy = s["role"] == "spy"
        if phase == "answer":
            attr = s["pending"]["attribute"]
            if attr is None:
                return f"answer {self.rng.choice(['yes', 'no'])}"
            if not spy:
                return "answer " + ("yes" if attr in _ATTRS[s["location"]] else "no")
            b = self.belief(s, me)
            p_yes = sum(w for loc, w in b.items() if attr in _ATTRS.get(loc, set()))
            return "answer " + ("yes" if p_yes >= 0.5 else "no")
        if phase in ("suspect", "vote"):
            return f"{phase} {self._top(self.suspicion(s, me))}"
        if phase == "last_guess":
            b = self.belief(s, me)
            return f"guess {max(b, key=lambda k: (b[k], k))}"
        # ask
        asked = {qa["attribute"] for qa in s["qa"]}
        if spy:
            b = self.belief(s, me)
            best = max(b, key=lambda k: (b[k], k))
            if b[best] >= self.guess_at or (s["asks_left"] <= 1 and b[best] >= 0.34):
                return f"guess {best}"

            # The question whose answer splits the belief most evenly (most information).
            def split(attr: str) -> float:
                p = sum(w for loc, w in b.items() if attr in _ATTRS.get(loc, set()))
                return abs(p - 0.5)

            attr = min(
                (a for a in s["questions"] if a not in asked), key=lambda a: (split(a), a), default=None
            )
            if attr is None:
                attr = self.rng.choice(sorted(s["questions"]))
            target = self.rng.choice([p for p in range(s["players"]) if p != me])
            return f"ask {target} {s['questions'][attr]}"
        n = len(s["locations"])
        freq = {a: sum(1 for loc in s["locations"] if a in _ATTRS.get(loc, set())) for a in s["questions"]}
        # Ambiguous questions: true for between a quarter and three quarters of the locations.
        pool = sorted(a for a in s["questions"] if a not in asked and n / 4 <= freq[a] <= 3 * n / 4)
        pool = pool or sorted(a for a in s["questions"] if a not in asked) or sorted(s["questions"])
        attr = self.rng.choice(pool)
        target = self._top(self.suspicion(s, me))
        return f"ask {target} {s['questions'][attr]}"


class SpyRandom(RandomAgent):
    """Uniform over the legal moves (which include the spy's location guesses)."""

    name = "random"
