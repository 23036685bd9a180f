"""Calendar reasoning: an event is moved several times; each step is
`YYYY-MM-DD + N days = YYYY-MM-DD` (or `- N days`, or weeks).

A step is correct when (1) its start date is the problem's date or one an earlier step reached,
(2) its shift is one of the moves the problem describes (or several of them combined), (3) the
calendar arithmetic is right, and (4) the date it reaches is one the moves can lead to. The
answer is right when it names the final date (ISO or '17 March 2025' style).

Held-out problems use other events, people and sentences.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from typing import Any

from selflab.stepwise.family import StepFamily
from selflab.stepwise.splitter import split_solution
from selflab.stepwise.types import Split, StepProblem

ENTITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "events": ("concert", "wedding", "football match", "book fair", "school trip"),
        "names": ("Anna", "Ben", "Carla", "David"),
    },
    "heldout": {
        "events": ("dentist visit", "chess final", "garden party", "job interview", "science fair"),
        "names": ("Farah", "George", "Hana", "Igor"),
    },
}

_STEP = re.compile(
    r"(?P<start>\d{4}-\d{1,2}-\d{1,2})\s*(?P<sign>[+-])\s*(?P<n>\d+)\s*(?P<unit>days?|weeks?)\s*=\s*"
    r"(?P<end>\d{4}-\d{1,2}-\d{1,2})",
    re.IGNORECASE,
)
# A date of the right shape (a 30 February still passes: the verifier records it as unparsable).
_DATE_RE = "20[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%B %d, %Y", "%B %d %Y", "%d %b %Y", "%b %d, %Y")


def iso(d: dt.date) -> str:
    return d.isoformat()


def parse_date(text: str) -> dt.date | None:
    t = text.strip().rstrip(".").strip()
    for f in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(t, f).date()
        except ValueError:
            continue
    m = re.search(r"\d{4}-\d{1,2}-\d{1,2}", t)
    if m:
        try:
            return dt.datetime.strptime(m.group(0), "%Y-%m-%d").date()
        except ValueError:
            return None
    return None


def _shift_text(days: int) -> str:
    if days % 7 == 0 and abs(days) >= 7:
        w = abs(days) // 7
        return f"{'+' if days > 0 else '-'} {w} week{'s' if w > 1 else ''}"
    return f"{'+' if days > 0 else '-'} {abs(days)} day{'s' if abs(days) > 1 else ''}"


def _phrase(split: Split, days: int, rng: random.Random) -> str:
    n, unit = (abs(days) // 7, "week") if days % 7 == 0 else (abs(days), "day")
    amount = f"{n} {unit}{'s' if n > 1 else ''}"
    if split == "train":
        return f"postponed by {amount}" if days > 0 else f"brought forward by {amount}"
    return f"pushed {amount} later" if days > 0 else f"moved {amount} earlier"


class DatesFamily(StepFamily):
    name = "dates"
    step_format = "'<date> + <N> days = <date>' with dates as YYYY-MM-DD (weeks allowed, '-' for earlier)"
    example_question = (
        "A picnic is set for 2023-05-10. It is delayed by 1 week, then shifted 3 days earlier. When is it?"
    )
    example_steps = ["2023-05-10 + 1 week = 2023-05-17", "2023-05-17 - 3 days = 2023-05-14"]
    example_answer = "2023-05-14"

    def make(self, rng: random.Random, split: Split, index: int) -> StepProblem:
        ent = ENTITIES[split]
        event, who = rng.choice(ent["events"]), rng.choice(ent["names"])
        start = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 700))
        k = rng.randint(2, 3)
        shifts: list[int] = []
        for _ in range(k):
            d = rng.choice((rng.randint(1, 20), 7 * rng.randint(1, 4), -rng.randint(1, 12)))
            shifts.append(d)
        moves = [_phrase(split, d, rng) for d in shifts]
        if split == "train":
            question = (
                f"{who}'s {event} was planned for {iso(start)}. It was first {moves[0]}"
                + "".join(f", then {m}" for m in moves[1:])
                + ". On what date does it take place?"
            )
            tpl = "postponed"
        else:
            question = (
                f"The {event} of {who} is on the calendar for {iso(start)}. "
                + " ".join(f"Then it is {m}." for m in moves)
                + " Which date is it on now?"
            )
            tpl = "calendar"
        dates = [start]
        for d in shifts:
            dates.append(dates[-1] + dt.timedelta(days=d))
        gold = [
            f"{iso(a)} {_shift_text(d)} = {iso(b)}" for a, b, d in zip(dates, dates[1:], shifts, strict=False)
        ]
        return StepProblem(
            id="",
            family=self.name,
            split=split,
            question=question,
            gold_steps=gold,
            answer=iso(dates[-1]),
            template=tpl,
            entities=[event, who],
            state={"start": iso(start), "shifts": shifts},
        )

    def step_regex(self, problem: StepProblem) -> str:
        return f"{_DATE_RE} [+-] [0-9]{{1,3}} (?:days?|weeks?) = {_DATE_RE}"

    def answer_regex(self, problem: StepProblem) -> str:
        return f"Answer: {_DATE_RE}"

    @staticmethod
    def _sums(shifts: list[int]) -> set[int]:
        return {sum(c) for r in range(1, len(shifts) + 1) for c in itertools.combinations(shifts, r)}

    def initial_state(self, problem: StepProblem) -> set[str]:
        return {problem.state["start"]}

    def check_step(self, problem: StepProblem, state: Any, step: str) -> tuple[bool | None, str, Any]:
        m = _STEP.search(step)
        if not m:
            return None, "no '<date> + <N> days = <date>' in the step", state
        a, b = parse_date(m.group("start")), parse_date(m.group("end"))
        if a is None or b is None:
            return None, "a date in the step is not a real calendar date", state
        n = int(m.group("n")) * (7 if m.group("unit").lower().startswith("week") else 1)
        days = n if m.group("sign") == "+" else -n
        known: set[str] = state
        after = known | {iso(b)}
        if iso(a) not in known:
            return False, f"starts from {iso(a)}, a date neither given nor reached before", after
        if a + dt.timedelta(days=days) != b:
            return (
                False,
                f"{iso(a)} {_shift_text(days)} is {iso(a + dt.timedelta(days=days))}, not {iso(b)}",
                after,
            )
        shifts: list[int] = problem.state["shifts"]
        if days not in self._sums(shifts):
            return False, f"a shift of {days} days is not one the problem describes", after
        start = dt.date.fromisoformat(problem.state["start"])
        if (b - start).days not in self._sums(shifts):
            return False, f"{iso(b)} is not a date the moves lead to", after
        return True, "correct", after

    def check_answer(self, problem: StepProblem, state: Any, answer: str | None) -> bool:
        return answer is not None and parse_date(answer) == dt.date.fromisoformat(problem.answer)

    def answer_key(self, problem: StepProblem, text: str) -> str | None:
        ans = split_solution(text).answer
        d = parse_date(ans) if ans else None
        return iso(d) if d else None

    def inject(self, problem: StepProblem, at: int, rng: random.Random) -> tuple[list[str], str, str] | None:
        shifts: list[int] = list(problem.state["shifts"])
        if not 0 <= at < len(shifts):
            return None
        kind = rng.choice(("slip", "sign", "wrong_shift"))
        start = dt.date.fromisoformat(problem.state["start"])
        dates = [start]
        steps = []
        for i, d in enumerate(shifts):
            a = dates[-1]
            shown = d
            if i == at and kind == "sign":
                shown = d = -d
            elif i == at and kind == "wrong_shift":
                shown = d = d + rng.choice((-2, -1, 1, 2))
                if d == 0:
                    shown = d = 1
            b = a + dt.timedelta(days=d)
            if i == at and kind == "slip":
                b = b + dt.timedelta(days=rng.choice((-1, 1, 30, -30)))
            steps.append(f"{iso(a)} {_shift_text(shown)} = {iso(b)}")
            dates.append(b)
        return steps, iso(dates[-1]), kind

    def continue_from(self, problem: StepProblem, steps: list[str]) -> tuple[list[str], str] | None:
        state = self.initial_state(problem)
        last = problem.state["start"]
        used = 0
        for s in steps:
            ok, _, state = self.check_step(problem, state, s)
            if ok is not True:
                return None
            m = _STEP.search(s)
            assert m is not None
            last = iso(parse_date(m.group("end")))  # type: ignore[arg-type]
        start = dt.date.fromisoformat(problem.state["start"])
        done = (dt.date.fromisoformat(last) - start).days
        shifts: list[int] = problem.state["shifts"]
        # the shortest run of the remaining moves, in order, that completes the total
        prefix = 0
        for i, d in enumerate(shifts):
            if prefix == done:
                used = i
                break
            prefix += d
        else:
            used = len(shifts) if prefix == done else -1
        if done == sum(shifts):
            return [], problem.answer
        if used < 0:
            rest_total = sum(shifts) - done
            cur = dt.date.fromisoformat(last)
            return [
                f"{iso(cur)} {_shift_text(rest_total)} = {iso(cur + dt.timedelta(days=rest_total))}"
            ], problem.answer
        out, cur = [], dt.date.fromisoformat(last)
        for d in shifts[used:]:
            nxt = cur + dt.timedelta(days=d)
            out.append(f"{iso(cur)} {_shift_text(d)} = {iso(nxt)}")
            cur = nxt
        return out, problem.answer
