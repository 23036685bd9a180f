"""Detective baselines.

Scripted detective: asks every suspect for an alibi, then runs the same consistency check the
generator uses (`mystery.consistent_suspects`) on what it has heard; while more than one suspect
fits, it observes the traits of a remaining candidate (to test the clues) and checks again; it
accuses as soon as one suspect is left (or the most likely one when the budget runs out). It
only uses what the observation shows, never the hidden solution.

Random detective: uniform over the legal actions (questions and accusations), so it accuses a
random suspect after a few random questions.
"""

from __future__ import annotations

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation
from selflab.envs.games.detective.mystery import Claim, Clue, consistent_suspects


def candidates(state: dict) -> list[str]:
    """Suspects still consistent with the clues, observed traits and statements heard so far."""
    clues = [Clue(**c) for c in state["clues"]]
    claims = [Claim(c["speaker"], c["time"], c["room"], tuple(c["companions"])) for c in state["claims"]]
    return consistent_suspects(
        state["suspects"], state["crime_room"], state["crime_time"], clues, state["traits"], claims
    )


class DetectiveScripted(ScriptedAgent):
    name = "scripted"

    def decide(self, observation: Observation) -> str:
        s = observation.state
        left = s["max_questions"] - s["questions_used"]
        fits = candidates(s) or list(s["suspects"])
        if len(fits) == 1:
            return f"ACCUSE {fits[0]}"
        if left > 0:
            heard = {c["speaker"] for c in s["claims"] if c["time"] == s["crime_time"]}
            for name in s["suspects"]:
                if name not in heard:
                    return f"ASK {name}: alibi"
            if s["clues"]:
                for name in fits:
                    if name not in s["traits"]:
                        return f"ASK {name}: traits"
        # Out of questions or of useful ones: accuse a remaining candidate.
        return f"ACCUSE {self.rng.choice(fits)}"


class DetectiveRandom(RandomAgent):
    """Uniformly random legal action."""

    name = "random"
