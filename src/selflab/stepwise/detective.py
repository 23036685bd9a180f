"""Detective deductions; each step rules one suspect out with a reason,
`rule out <suspect>: <reason>`, and the answer names the murderer.

The cases come from the detective game's generator (`envs.games.detective`), which proves every
case solvable: exactly one suspect fits the scene clues and the statements. A problem shows the
clues (the murderer's traits), every suspect's traits and what each says about the hour of the
murder (the murderer lies about it). Only that hour's statements matter: under "X did it, the
others tell the truth", statements about other hours are all true and cannot contradict.

A step `rule out X: <reason>` is correct when all of these hold:
- X is a suspect of the case, not already ruled out, and not the murderer;
- the reason cites traits (`right-handed`, `red hair`, `does not smoke`, `muddy shoes`): each
  trait it gives X is X's real trait, what it says of the murderer matches a clue, and at least
  one cited trait of X differs from a clue;
- or the reason cites the statements (`says`, `alibi`, `with`, `statements`): the statements
  alone contradict "X did it" (the game's `hypothesis_consistent` with no clues).
A reason with neither traits nor statements is unparsable (`ok=None`): the step is recorded,
never guessed. A concluding step `X is the murderer` is correct once every other suspect is
ruled out and X is the murderer. The answer is right when it names the murderer.

Held-out problems use other suspect and victim names and another layout and wording.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from typing import Any

from selflab.envs.games.detective.instances import generate
from selflab.envs.games.detective.mystery import Claim, Mystery, consistent_suspects, hypothesis_consistent
from selflab.stepwise.detective_text import (
    CONCLUDE,
    MURDERER_SEGMENT,
    RULE_OUT,
    STATEMENT,
    cited_traits,
    first_suspect,
    murderer_phrase,
    trait_phrase,
    trait_values,
)
from selflab.stepwise.family import StepFamily
from selflab.stepwise.splitter import split_solution
from selflab.stepwise.types import Split, StepProblem

# No name may contain a trait word (red, brown, clean, ...) or a statement word.
ENTITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "names": ("Colonel Hale", "Doctor Moreau", "Mrs Ashford", "Miss Vance", "Professor Quill", "Lady Fenwick"),
        "victims": ("Lord Blackwood", "Sir Pembroke", "Countess Lusk"),
    },
    "heldout": {
        "names": ("Captain Ruiz", "Madame Petrova", "Reverend Iqbal", "Mister Lindqvist", "Nurse Tanaka", "Baroness Kray"),
        "victims": ("Judge Mayhew", "Mrs Thorne", "Duke Ormond"),
    },
}  # fmt: skip


@lru_cache(maxsize=4096)
def _case(state_key: str) -> Mystery:
    return Mystery.model_validate(json.loads(state_key))


def case_of(problem: StepProblem) -> Mystery:
    """The problem's case (validated once per distinct case)."""
    return _case(json.dumps(problem.state["mystery"], sort_keys=True))


def statements(m: Mystery) -> list[Claim]:
    """What every suspect says about the hour of the murder (the murderer lies)."""
    return [m.claim(n, m.crime_time) for n in m.names]


def traits_of(m: Mystery) -> dict[str, dict[str, str]]:
    return {n: m.observed_traits(n) for n in m.names}


def statements_clear(m: Mystery, name: str) -> bool:
    """Whether the statements alone contradict "`name` did it, the others tell the truth"."""
    return not hypothesis_consistent(
        name, m.names, m.crime_room, m.crime_time, [], traits_of(m), statements(m)
    )


def _renamed(m: Mystery, names: list[str], victim: str) -> Mystery:
    mapping = dict(zip(m.names, names, strict=True))
    suspects = [s.model_copy(update={"name": mapping[s.name]}) for s in m.suspects]
    return m.model_copy(update={"suspects": suspects, "culprit": mapping[m.culprit], "victim": victim})


def _said(c: Claim) -> str:
    company = f" with {' and '.join(c.companions)}" if c.companions else ", alone"
    return f'"At {c.time} I was in the {c.room}{company}."'


class DetectiveFamily(StepFamily):
    name = "detective"
    step_format = (
        "'rule out <suspect>: <reason>', the reason a trait that differs from a clue "
        "(e.g. 'right-handed, but the murderer is left-handed') or what the statements show"
    )
    example_question = (
        "Lady Quince was found dead in the attic at 20:00. The murderer was alone with the victim there.\n"
        "Clues: The murderer has grey hair.\n"
        "Suspects:\n"
        '- Baron Voss: right-handed, black hair, smokes, clean shoes. Says: "At 20:00 I was in the pantry '
        'with Sister Agnes."\n'
        '- Sister Agnes: left-handed, grey hair, does not smoke, clean shoes. Says: "At 20:00 I was in the '
        'pantry with Baron Voss."\n'
        '- Major Dunn: right-handed, grey hair, does not smoke, muddy shoes. Says: "At 20:00 I was in the '
        'cellar, alone."\n'
        "Who is the murderer?"
    )
    example_steps = [
        "rule out Baron Voss: black hair, but the murderer has grey hair",
        "rule out Sister Agnes: Baron Voss says Sister Agnes was with him in the pantry at 20:00",
    ]
    example_answer = "Major Dunn"

    # -- problems ---------------------------------------------------------------------------------
    def make(self, rng: random.Random, split: Split, index: int) -> StepProblem:
        ent = ENTITIES[split]
        for _ in range(100):
            n = rng.randint(3, 4)
            m = generate(n, rng, id=f"{split}-{index}")
            m = _renamed(m, rng.sample(ent["names"], n), rng.choice(ent["victims"]))
            fits = consistent_suspects(
                m.names, m.crime_room, m.crime_time, m.clues, traits_of(m), statements(m)
            )
            if fits == [m.culprit]:
                break
        else:  # pragma: no cover - the generator's cases are solvable from this hour's statements
            raise RuntimeError("could not draw a detective case solvable from the statements")
        question = self._question(m, split)
        gold = [self._gold_step(m, x) for x in m.names if x != m.culprit]
        return StepProblem(
            id="",
            family=self.name,
            split=split,
            question=question,
            gold_steps=gold,
            answer=m.culprit,
            template="case-file" if split == "train" else "police-report",
            entities=[*m.names, m.victim],
            state={"mystery": m.model_dump()},
        )

    @staticmethod
    def _question(m: Mystery, split: Split) -> str:
        said = {c.speaker: _said(c) for c in statements(m)}
        tr = traits_of(m)

        def traits(n: str) -> str:
            return ", ".join(trait_phrase(t, tr[n][t]) for t in ("handedness", "hair", "smokes", "shoes"))

        if split == "train":
            lines = [
                f"{m.victim} was found dead in the {m.crime_room} at {m.crime_time}. "
                "The murderer was alone with the victim there.",
                "Clues: " + " ".join(f"The murderer {murderer_phrase(c.trait, c.value)}." for c in m.clues),
                "Suspects:",
                *[f"- {n}: {traits(n)}. Says: {said[n]}" for n in m.names],
                "Who is the murderer?",
            ]
        else:
            lines = [
                f"Police report: {m.victim} died in the {m.crime_room} at {m.crime_time}, where the killer "
                "was alone with the victim.",
                "Forensic findings: "
                + "; ".join(f"the killer {murderer_phrase(c.trait, c.value)}" for c in m.clues)
                + ".",
                "People questioned:",
                *[f"* {n} ({traits(n)}) told the police: {said[n]}" for n in m.names],
                "Name the killer.",
            ]
        return "\n".join(lines)

    @staticmethod
    def _gold_step(m: Mystery, x: str) -> str:
        """The code's reason for ruling out innocent `x`: a clue it fails, else the statements."""
        tr = traits_of(m)[x]
        for c in m.clues:
            if tr[c.trait] != c.value:
                return (
                    f"rule out {x}: {trait_phrase(c.trait, tr[c.trait])}, "
                    f"but the murderer {murderer_phrase(c.trait, c.value)}"
                )
        for st in statements(m):
            if st.speaker not in (x, m.culprit) and x in st.companions:
                return f"rule out {x}: {st.speaker} says {x} was with them in the {st.room} at {st.time}"
        for st in statements(m):  # the murderer's lie exposed by someone who was in that room
            if st.speaker not in (x, m.culprit) and st.room == m.lie_room and m.culprit not in st.companions:
                return (
                    f"rule out {x}: {m.culprit} claims to have been alone in the {st.room} at {st.time}, "
                    f"but {st.speaker} says {st.speaker} was there, so {m.culprit} lies and the statements clear {x}"
                )
        return f"rule out {x}: the statements clear {x}"

    # -- step format for constrained decoding ---------------------------------------------------
    def step_regex(self, problem: StepProblem) -> str:
        """`rule out <suspect>: ` and a reason in one of the forms the code's own solutions use: a
        trait (`, but the murderer <trait>`), a statement placing the suspect elsewhere, the
        murderer's lie exposed, or `the statements clear <suspect>` (names: letters and spaces)."""
        n = "(?:" + "|".join(case_of(problem).names) + ")"
        hair = "(?:black|brown|blonde|red|grey) hair"
        own = f"(?:(?:left|right)-handed|{hair}|smokes|does not smoke|(?:muddy|clean) shoes)"
        mur = f"(?:is (?:left|right)-handed|has {hair}|smokes|does not smoke|has (?:muddy|clean) shoes)"
        room, time = "[a-z]+(?: [a-z]+)?", "[0-9]{2}:[0-9]{2}"
        said = f"{n} says {n} was with them in the {room} at {time}"
        lie = (
            f"{n} claims to have been alone in the {room} at {time}, but {n} says {n} was there, "
            f"so {n} lies and the statements clear {n}"
        )
        return f"rule out {n}: (?:{own}(?:, but the murderer {mur})?|{said}|{lie}|the statements clear {n})"

    def answer_regex(self, problem: StepProblem) -> str:
        return "Answer: (?:" + "|".join(case_of(problem).names) + ")"

    # -- verification ---------------------------------------------------------------------------
    def initial_state(self, problem: StepProblem) -> tuple[str, ...]:
        return ()

    def check_step(self, problem: StepProblem, state: Any, step: str) -> tuple[bool | None, str, Any]:
        m = case_of(problem)
        ruled: tuple[str, ...] = state
        rule = RULE_OUT.search(step)
        if rule is None:
            conclude = CONCLUDE.search(step)
            if conclude is None:
                return None, "no 'rule out <suspect>: <reason>' in the step", state
            who = first_suspect(conclude.group("a") or conclude.group("b") or "", m.names)
            if who is None:
                return None, "the conclusion names no suspect of the case", state
            left = [n for n in m.names if n != who[0] and n not in ruled]
            if who[0] != m.culprit:
                return False, f"{who[0]} is not the murderer", state
            if left:
                return False, f"concluded too early: {', '.join(left)} not ruled out yet", state
            return True, "correct", state
        who = first_suspect(rule.group("rest"), m.names)
        if who is None:
            return None, "the step names no suspect of the case", state
        x, end = who
        reason = rule.group("rest")[end:].strip(" :,-.")
        after = (*ruled, x) if x not in ruled else ruled
        if x in ruled:
            return False, f"{x} was already ruled out", state
        if x == m.culprit:
            return False, f"{x} fits every clue and no statement clears {x}", after
        verdict = self._check_reason(m, x, reason)
        return (verdict[0], verdict[1], after)

    @staticmethod
    def _check_reason(m: Mystery, x: str, reason: str) -> tuple[bool | None, str]:
        """Whether `reason` shows innocent `x` is not the murderer (None: no reason to read)."""
        # what the reason says of the murderer (or a clue) must be a clue; the rest is about X
        about = " ".join(seg.group(0) for seg in MURDERER_SEGMENT.finditer(reason))
        own = MURDERER_SEGMENT.sub(" ", reason)
        said_x, said_m = cited_traits(own), cited_traits(about)
        tr = traits_of(m)[x]
        clues = {c.trait: c.value for c in m.clues}
        for trait, values in said_m.items():
            if values != {clues.get(trait)}:
                wrong = sorted(values - {clues.get(trait)})[0]
                return False, f"no clue says the murderer {murderer_phrase(trait, wrong)}"
        for trait, values in said_x.items():
            if values != {tr[trait]}:
                return False, f"{x} is {trait_phrase(trait, tr[trait])}, not {' / '.join(sorted(values))}"
        cited = set(said_x) | set(said_m)
        if cited:
            if not any(t in clues and clues[t] != tr[t] for t in cited):
                return False, f"no clue sets the murderer apart from {x} by {', '.join(sorted(cited))}"
            return True, "correct"
        if STATEMENT.search(reason):
            if statements_clear(m, x):
                return True, "correct"
            return False, f"the statements do not clear {x}"
        return None, "no reason to read (a trait that differs from a clue, or the statements)"

    def check_answer(self, problem: StepProblem, state: Any, answer: str | None) -> bool:
        return self.answer_key(problem, f"Answer: {answer}" if answer else "") == problem.answer

    def answer_key(self, problem: StepProblem, text: str) -> str | None:
        """The one suspect the answer names (None when it names none or several)."""
        ans = split_solution(text).answer
        if not ans:
            return None
        names = case_of(problem).names
        named = {n for n in names if re.search(rf"\b{re.escape(n.split()[-1])}\b", ans, re.IGNORECASE)}
        return named.pop() if len(named) == 1 else None

    # -- controlled mistakes ----------------------------------------------------------------------
    def inject(self, problem: StepProblem, at: int, rng: random.Random) -> tuple[list[str], str, str] | None:
        m = case_of(problem)
        innocents = [n for n in m.names if n != m.culprit]
        if not 0 <= at < len(innocents):
            return None
        gold = list(problem.gold_steps)
        x, c = innocents[at], m.culprit
        tr, clues = traits_of(m), {cl.trait: cl.value for cl in m.clues}
        options: list[tuple[str, str]] = []
        # the murderer ruled out by misreading one of its traits that matches a clue
        for t, v in clues.items():
            other = next(o for o in trait_values(t) if o != v)
            options.append(
                (
                    "culprit_cleared",
                    f"rule out {c}: {trait_phrase(t, other)}, but the murderer {murderer_phrase(t, v)}",
                )
            )
        # an innocent ruled out for a trait it does not have
        for t, v in clues.items():
            if tr[x][t] == v:
                other = next(o for o in trait_values(t) if o != v)
                options.append(
                    (
                        "misread",
                        f"rule out {x}: {trait_phrase(t, other)}, but the murderer {murderer_phrase(t, v)}",
                    )
                )
        # an innocent ruled out for a true trait no clue speaks to (or the murderer shares)
        for t in ("handedness", "hair", "smokes", "shoes"):
            if clues.get(t) in (None, tr[x][t]):
                options.append(("irrelevant", f"rule out {x}: {trait_phrase(t, tr[x][t])}"))
        if not statements_clear(m, x):
            options.append(("false_alibi", f"rule out {x}: the statements clear {x}"))
        if not options:
            return None
        kind = rng.choice(sorted({k for k, _ in options}))  # kinds equally often, then a step of it
        bad = rng.choice([b for k, b in options if k == kind])
        if kind == "culprit_cleared":
            # carry on consistently: the others are ruled out but one, who becomes the answer
            rest = gold[at:]
            return [*gold[:at], bad, *rest[:-1]], innocents[-1], kind
        return [*gold[:at], bad, *gold[at + 1 :]], c, kind

    def continue_from(self, problem: StepProblem, steps: list[str]) -> tuple[list[str], str] | None:
        m = case_of(problem)
        state: Any = self.initial_state(problem)
        for s in steps:
            ok, _, state = self.check_step(problem, state, s)
            if ok is not True:
                return None
        todo = [n for n in m.names if n != m.culprit and n not in state]
        return [self._gold_step(m, n) for n in todo], m.culprit
