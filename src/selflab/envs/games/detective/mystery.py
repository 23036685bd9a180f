"""A murder mystery as data, what each suspect says, and the checker that proves a case solvable.

The world: a victim found in `crime_room`; the murderer was alone with the victim there at
`crime_time`. Every suspect has a true timeline (time -> room) and observable traits
(handedness, smoking, hair colour, muddy or clean shoes). Clues found at the scene are facts
about the murderer's traits.

Who says what (answers are computed, never generated):
- innocents tell the truth: where they were at each time and who was with them;
- the murderer lies only about `crime_time`: it claims to have been alone in `lie_room`
  (never the crime room, never the garden, whose mud is physical evidence). It does not know
  which clues were found, so it never lies about traits (which the detective observes anyway)
  and tells the truth about the other times.

The checker: a suspect `s` is *consistent* with the evidence if "s is the murderer and everyone
else tells the truth" contradicts nothing: s's traits match every clue, nobody else puts s
elsewhere at the crime time, nobody else was in the crime room then, and the others' statements
agree with each other (two people placing the same person in different rooms, or someone
missing from a room whose occupant listed everyone present, is a contradiction). A mystery is
solvable when exactly one suspect is consistent with all the evidence there is to gather.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

TRAITS: dict[str, tuple[str, ...]] = {
    "handedness": ("left", "right"),
    "smokes": ("yes", "no"),
    "hair": ("black", "brown", "blonde", "red", "grey"),
    "shoes": ("muddy", "clean"),
}
GARDEN = "garden"


class Suspect(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    relation: str
    motive: str
    traits: dict[str, str]
    timeline: dict[str, str]
    """time -> room where the suspect truly was."""


class Clue(BaseModel):
    """Physical evidence: the murderer's `trait` has `value`."""

    model_config = ConfigDict(frozen=True)

    trait: str
    value: str
    text: str


class Claim(NamedTuple):
    """A statement "at `time` I (`speaker`) was in `room` with exactly `companions`"."""

    speaker: str
    time: str
    room: str
    companions: tuple[str, ...]


class Mystery(BaseModel):
    """One case. `culprit` and `lie_room` are the hidden truth; everything else the detective
    can see or ask about."""

    model_config = ConfigDict(frozen=True)

    id: str
    setting: str
    victim: str
    weapon: str
    rooms: list[str]
    times: list[str]
    crime_time: str
    crime_room: str
    suspects: list[Suspect]
    culprit: str
    lie_room: str
    clues: list[Clue]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.suspects]

    def suspect(self, name: str) -> Suspect:
        for s in self.suspects:
            if s.name == name:
                return s
        raise KeyError(name)

    def true_room(self, name: str, time: str) -> str:
        return self.suspect(name).timeline[time]

    def claim(self, speaker: str, time: str) -> Claim:
        """What `speaker` says about its whereabouts at `time` (the murderer lies at the crime time)."""
        if speaker == self.culprit and time == self.crime_time:
            return Claim(speaker, time, self.lie_room, ())
        room = self.true_room(speaker, time)
        companions = tuple(
            sorted(s.name for s in self.suspects if s.name != speaker and s.timeline[time] == room)
        )
        return Claim(speaker, time, room, companions)

    def sightings(self, speaker: str, other: str) -> list[tuple[str, str]]:
        """(time, room) pairs at which `speaker` says it was with `other`."""
        out = []
        for t in self.times:
            c = self.claim(speaker, t)
            if other in c.companions:
                out.append((t, c.room))
        return out

    def observed_traits(self, name: str) -> dict[str, str]:
        """Traits as the detective sees them: always true."""
        return dict(self.suspect(name).traits)


def shoes_for(timeline: dict[str, str]) -> str:
    """Shoes are muddy exactly when the person was in the garden at some time that evening."""
    return "muddy" if GARDEN in timeline.values() else "clean"


def hypothesis_consistent(
    suspect: str,
    names: Iterable[str],
    crime_room: str,
    crime_time: str,
    clues: Iterable[Clue],
    traits: dict[str, dict[str, str]],
    claims: Iterable[Claim],
) -> bool:
    """Whether "`suspect` is the murderer, everyone else tells the truth" fits the evidence.
    Traits not observed yet and statements not heard yet constrain nothing."""
    names = set(names)
    for clue in clues:
        seen = traits.get(suspect, {}).get(clue.trait)
        if seen is not None and seen != clue.value:
            return False
    where: dict[tuple[str, str], str] = {(suspect, crime_time): crime_room}
    absent: set[tuple[str, str, str]] = set()
    for c in claims:
        if c.speaker == suspect:
            continue  # the murderer's word counts for nothing
        if c.time == crime_time and c.room == crime_room:
            return False  # only the murderer was with the victim
        present = {c.speaker, *c.companions}
        for person in present:
            if where.setdefault((person, c.time), c.room) != c.room:
                return False
        for person in names - present:
            absent.add((person, c.time, c.room))
    return all(where.get((p, t)) != r for p, t, r in absent)


def consistent_suspects(
    names: list[str],
    crime_room: str,
    crime_time: str,
    clues: Iterable[Clue],
    traits: dict[str, dict[str, str]],
    claims: Iterable[Claim],
) -> list[str]:
    """Every suspect who could be the murderer given this evidence, in `names` order."""
    clues, claims = list(clues), list(claims)
    return [
        s for s in names if hypothesis_consistent(s, names, crime_room, crime_time, clues, traits, claims)
    ]


def full_evidence(m: Mystery) -> tuple[dict[str, dict[str, str]], list[Claim]]:
    """Everything the detective could learn: all traits and every statement at every time."""
    traits = {s.name: m.observed_traits(s.name) for s in m.suspects}
    claims = [m.claim(s.name, t) for s in m.suspects for t in m.times]
    return traits, claims


def solutions(m: Mystery) -> list[str]:
    """Suspects consistent with all the evidence: exactly `[m.culprit]` for a solvable mystery."""
    traits, claims = full_evidence(m)
    return consistent_suspects(m.names, m.crime_room, m.crime_time, m.clues, traits, claims)


def is_solvable(m: Mystery) -> bool:
    return solutions(m) == [m.culprit]


def exclusion_reasons(m: Mystery) -> dict[str, list[str]]:
    """Why each innocent is cleared, in words (for replays and for checking a generator)."""
    traits, claims = full_evidence(m)
    out: dict[str, list[str]] = {}
    for s in m.names:
        if s == m.culprit:
            continue
        reasons = [
            f"{s} has {c.trait} = {traits[s][c.trait]}, but the clue says {c.value}"
            for c in m.clues
            if traits[s][c.trait] != c.value
        ]
        if not hypothesis_consistent(s, m.names, m.crime_room, m.crime_time, [], traits, claims):
            reasons.append(f"the statements contradict {s} being in the {m.crime_room} at {m.crime_time}")
        out[s] = reasons
    return out
