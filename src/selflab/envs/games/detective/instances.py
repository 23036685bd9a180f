"""Seeded mystery generator: every mystery it returns is proven solvable by `mystery.is_solvable`.

How: draw a setting, 3-5 suspects with true timelines and traits, a murderer and its lie; pick one
or two clues from the murderer's traits; then, while an innocent is still consistent with all the
evidence, add a clue that clears one; if no clue can, draw again. So innocents are cleared by
clues (physical evidence) or by alibis (statements that contradict the lie or corroborate them).
"""

from __future__ import annotations

import random

from selflab.envs.games.detective.mystery import (
    GARDEN,
    TRAITS,
    Clue,
    Mystery,
    Suspect,
    shoes_for,
    solutions,
)
from selflab.errors import ConfigError

SUSPECT_NAMES = (
    "Colonel Hale",
    "Dr. Moreau",
    "Mrs. Ashford",
    "Miss Vance",
    "Professor Quill",
    "Lady Fenwick",
    "Mr. Okafor",
    "Captain Ruiz",
    "Madame Petrova",
    "Reverend Iqbal",
    "Mr. Lindqvist",
    "Nurse Tanaka",
)
VICTIMS = (
    "Lord Edmund Blackwood",
    "Sir Arthur Pembroke",
    "Mrs. Eleanor Crane",
    "Mr. Julian Thorne",
    "Countess Vera Lusk",
    "Judge Howard Mayhew",
)
SETTINGS = (
    "Blackwood Manor",
    "Pembroke Hall",
    "the Crane estate",
    "Thornfield House",
    "Lusk Castle",
    "Mayhew Lodge",
)
WEAPONS = (
    "a brass candlestick",
    "a letter opener",
    "a fire poker",
    "a length of rope",
    "a marble bust",
    "a walking cane",
)
ROOMS = (
    "library",
    "study",
    "kitchen",
    "ballroom",
    "conservatory",
    "dining room",
    "billiard room",
    "gallery",
    "cellar",
)
TIMES = ("19:00", "20:00", "21:00", "22:00")
RELATIONS = (
    ("business partner", "was about to be cut out of a lucrative deal"),
    ("personal physician", "was being blackmailed over a patient's death"),
    ("heir", "stands to inherit most of the estate"),
    ("private secretary", "was about to be dismissed for theft"),
    ("old friend", "owed the victim a large sum of money"),
    ("rival collector", "lost a bitter auction to the victim last month"),
    ("lawyer", "had been quietly embezzling from the victim's accounts"),
    ("former fiancé(e)", "was publicly humiliated when the victim broke off the engagement"),
    ("estranged sibling", "was disinherited by the victim's new will"),
    ("neighbour", "has fought the victim in court over a boundary for years"),
)


def clue_text(trait: str, value: str) -> str:
    """The scene evidence that proves the murderer has `trait` = `value`."""
    if trait == "handedness":
        return f"The angle of the blow shows it was struck by a {value}-handed person."
    if trait == "smokes":
        return "Fresh cigarette ash lies beside the body; the victim never smoked, so the murderer smokes."
    if trait == "hair":
        return f"A {value} hair was found on the victim's collar; it is the murderer's."
    if trait == "shoes":
        return "Muddy footprints lead from the garden door to the body: the murderer had been in the garden."
    raise ValueError(f"no clue for trait {trait!r}")


def _candidate_clues(culprit: Suspect, crime_time: str, times: list[str]) -> list[Clue]:
    out = [
        Clue(
            trait="handedness",
            value=culprit.traits["handedness"],
            text=clue_text("handedness", culprit.traits["handedness"]),
        ),
        Clue(trait="hair", value=culprit.traits["hair"], text=clue_text("hair", culprit.traits["hair"])),
    ]
    if culprit.traits["smokes"] == "yes":
        out.append(Clue(trait="smokes", value="yes", text=clue_text("smokes", "yes")))
    before = times[: times.index(crime_time)]
    if any(culprit.timeline[t] == GARDEN for t in before):
        out.append(Clue(trait="shoes", value="muddy", text=clue_text("shoes", "muddy")))
    return out


def _draw(n: int, rng: random.Random, id: str) -> Mystery | None:
    k = rng.randrange(len(VICTIMS))
    rooms = [GARDEN, *rng.sample(ROOMS, rng.randint(4, 5))]
    crime_room = rng.choice(rooms[1:])
    times = list(TIMES)
    crime_time = rng.choice(times[1:3])
    names = rng.sample(SUSPECT_NAMES, n)
    culprit = rng.choice(names)
    relations = rng.sample(RELATIONS, n)
    suspects = []
    for name, (relation, motive) in zip(names, relations, strict=True):
        timeline = {}
        for t in times:
            if t == crime_time:
                timeline[t] = (
                    crime_room if name == culprit else rng.choice([r for r in rooms if r != crime_room])
                )
            else:
                timeline[t] = rng.choice(rooms)
        traits = {
            "handedness": "left" if rng.random() < 0.25 else "right",
            "smokes": "yes" if rng.random() < 0.3 else "no",
            "hair": rng.choice(TRAITS["hair"]),
            "shoes": shoes_for(timeline),
        }
        suspects.append(
            Suspect(name=name, relation=relation, motive=motive, traits=traits, timeline=timeline)
        )
    free = [r for r in rooms if r not in (crime_room, GARDEN)]
    occupied = {s.timeline[crime_time] for s in suspects if s.name != culprit}
    # Half the time the murderer claims a room where innocents were (its lie can be exposed by
    # their statements), otherwise an empty one (only clues and corroboration can clear people).
    empty = [r for r in free if r not in occupied]
    lie_room = rng.choice(empty if empty and rng.random() < 0.5 else free)
    weapon = rng.choice(WEAPONS)
    culprit_s = next(s for s in suspects if s.name == culprit)
    pool = _candidate_clues(culprit_s, crime_time, times)

    def build(cl: list[Clue]) -> Mystery:
        return Mystery(
            id=id,
            setting=SETTINGS[k],
            victim=VICTIMS[k],
            weapon=weapon,
            rooms=rooms,
            times=times,
            crime_time=crime_time,
            crime_room=crime_room,
            suspects=suspects,
            culprit=culprit,
            lie_room=lie_room,
            clues=cl,
        )

    clues: list[Clue] = []
    m = build(clues)
    while True:
        left = [s for s in solutions(m) if s != culprit]
        if not left:
            break
        # The clue clearing the fewest of the remaining innocents, so alibis still matter.
        gains = {
            i: sum(m.suspect(s).traits[c.trait] != c.value for s in left)
            for i, c in enumerate(pool)
            if c not in clues
        }
        gains = {i: g for i, g in gains.items() if g > 0}
        if not gains:
            return None
        low = min(gains.values())
        clues.append(pool[rng.choice(sorted(i for i, g in gains.items() if g == low))])
        m = build(clues)
    if not clues:
        # Statements alone solve it; the scene still holds one (redundant) piece of evidence.
        m = build([rng.choice(pool)])
    return m


def generate(suspects: int, rng: random.Random, id: str = "mystery") -> Mystery:
    """A solvable mystery with `suspects` suspects (3 to 5), drawn from `rng` only."""
    if not 3 <= suspects <= 5:
        raise ConfigError(f"a mystery takes 3 to 5 suspects, got {suspects}", "pass suspects=3, 4 or 5")
    for _ in range(1000):
        m = _draw(suspects, rng, id)
        if m is not None:
            return m
    raise RuntimeError("could not draw a solvable mystery in 1000 tries")  # pragma: no cover
