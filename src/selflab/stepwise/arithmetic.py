"""Multi-step arithmetic word problems; each step is `expression = value`.

A step is correct when (1) its expression evaluates to the value it states, (2) every number it
uses was given in the problem or stated by an earlier step, and (3) its value is one the gold
computation needs (a given number or a gold intermediate result). (3) is what catches a wrong
operation that is computed correctly; after the first error, steps that carry the wrong value on
are wrong too (the Math-Shepherd reading: a step is good when it still leads to the answer).

Templates and entities (names, items) are split: held-out problems use templates and entities the
training side never sees.
"""

from __future__ import annotations

import ast
import math
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selflab.stepwise.family import StepFamily
from selflab.stepwise.splitter import split_solution
from selflab.stepwise.types import Split, StepProblem

ENTITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "names": ("Maria", "Tom", "Aisha", "Kenji", "Lena", "Noah"),
        "items": ("apples", "books", "marbles", "stamps", "cards"),
    },
    "heldout": {
        "names": ("Omar", "Priya", "Lucas", "Zoe", "Ivan", "Mei"),
        "items": ("pencils", "cookies", "stickers", "shells", "buttons"),
    },
}

Plan = list[tuple[str, Any, Any]]  # (op, x, y); x/y are numbers or "#i" (result of step i)


@dataclass(frozen=True)
class _Template:
    name: str
    draw: Callable[[random.Random, str, str], tuple[str, Plan]]


def _t_packs(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    a, b = rng.randint(3, 12), rng.randint(4, 15)
    c = rng.randint(2, a * b - 1)
    q = (
        f"{name} buys {a} packs of {item} with {b} {item} in each pack, then gives {c} {item} to a "
        f"friend. How many {item} does {name} have left?"
    )
    return q, [("*", a, b), ("-", "#0", c)]


def _t_rows(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    a, b, c, d = rng.randint(2, 9), rng.randint(3, 12), rng.randint(2, 9), rng.randint(3, 12)
    q = f"{name} lays out {a} rows of {b} {item} and {c} rows of {d} {item}. How many {item} are there in all?"
    return q, [("*", a, b), ("*", c, d), ("+", "#0", "#1")]


def _t_share(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    d, per = rng.randint(2, 6), rng.randint(3, 12)
    a = rng.randint(2, 6)
    b = rng.randint(3, 10)
    total = d * per
    while total <= a * b:
        per += 5
        total = d * per
    c = total - a * b
    q = (
        f"{name} has {a} bags with {b} {item} in each bag, gets {c} more {item}, and shares all of "
        f"them equally among {d} friends. How many {item} does each friend get?"
    )
    return q, [("*", a, b), ("+", "#0", c), ("/", "#1", d)]


def _t_weeks(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    a, b, c = rng.randint(3, 20), rng.randint(2, 9), rng.randint(5, 40)
    q = (
        f"{name} starts with {c} {item} and collects {a} more every week for {b} weeks. "
        f"How many {item} does {name} have after those weeks?"
    )
    return q, [("*", a, b), ("+", c, "#0")]


def _h_shop(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    a, b = rng.randint(3, 9), rng.randint(5, 20)
    c = rng.randint(1, a * b // 2)
    d = rng.randint(1, a * b - c - 1)
    q = (
        f"The shop of {name} has {a} shelves that hold {b} {item} each. In the morning it sells {c} "
        f"{item}, and in the afternoon another {d}. How many {item} remain in the shop?"
    )
    return q, [("*", a, b), ("-", "#0", c), ("-", "#1", d)]


def _h_envelopes(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    d, per = rng.randint(2, 5), rng.randint(4, 15)
    rest = d * per
    c = rng.randint(2, 30)
    b = rng.randint(2, 7)
    a = (rest + c + b - 1) // b
    extra = a * b - (rest + c)
    c += extra  # keep a*b - c divisible by d
    q = (
        f"{name} earns {a} dollars a day for {b} days, spends {c} dollars on {item}, and puts the "
        f"remaining money into {d} envelopes in equal parts. How many dollars go into each envelope?"
    )
    return q, [("*", a, b), ("-", "#0", c), ("/", "#1", d)]


def _h_grow(rng: random.Random, name: str, item: str) -> tuple[str, Plan]:
    a, k = rng.randint(4, 30), rng.randint(2, 5)
    b = rng.randint(1, a * k - 1)
    q = (
        f"On Monday {name} owns {a} {item}. By Friday {name} owns {k} times as many, and on Saturday "
        f"{b} of them break. How many {item} are still whole?"
    )
    return q, [("*", a, k), ("-", "#0", b)]


TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "train": (
        _Template("packs", _t_packs),
        _Template("rows", _t_rows),
        _Template("share", _t_share),
        _Template("weeks", _t_weeks),
    ),
    "heldout": (
        _Template("shop", _h_shop),
        _Template("envelopes", _h_envelopes),
        _Template("grow", _h_grow),
    ),
}

_OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_AST_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def fmt(x: float) -> str:
    return str(int(round(x))) if abs(x - round(x)) < 1e-9 else f"{x:.2f}".rstrip("0").rstrip(".")


def run_plan(plan: Plan, override: dict[int, float] | None = None) -> list[float]:
    """Values of every step; `override` replaces a step's stated value (a slip carried on)."""
    vals: list[float] = []
    for i, (op, x, y) in enumerate(plan):
        xv = vals[int(x[1:])] if isinstance(x, str) else float(x)
        yv = vals[int(y[1:])] if isinstance(y, str) else float(y)
        v = _OPS[op](xv, yv) if not (op == "/" and yv == 0) else math.nan
        vals.append((override or {}).get(i, v))
    return vals


def render_plan(plan: Plan, vals: list[float], results: list[float] | None = None) -> list[str]:
    """`x op y = v` lines; `results` (default: vals) are the stated values."""
    res = results if results is not None else vals
    lines = []
    for op, x, y in plan:
        xs = fmt(vals[int(x[1:])]) if isinstance(x, str) else fmt(x)
        ys = fmt(vals[int(y[1:])]) if isinstance(y, str) else fmt(y)
        lines.append(f"{xs} {op} {ys} = {fmt(res[len(lines)])}")
    return lines


def safe_eval(expr: str) -> float:
    """Evaluate + - * / and parentheses over numbers; anything else raises ValueError."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
            return _AST_OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")

    return ev(ast.parse(expr.strip(), mode="eval"))


_NUM = re.compile(r"\d+(?:\.\d+)?")
_VALUE = re.compile(r"^\s*\$?\s*(-?\d+(?:\.\d+)?)\b")


_EXPR = re.compile(r"[\d.(][\d\s.+\-*/()]*$")
_PURE = re.compile(r"[\d\s.+\-*/()]+")


def parse_step(step: str) -> tuple[str, float] | str:
    """(expression, stated value) or the reason the step cannot be read. Prose around one
    equation is allowed ('So she has 3 * 4 = 12 shells'); the expression is the arithmetic written
    right before '=', and it must not continue a longer expression the prose hides."""
    s = step.strip().rstrip(".").replace("×", "*").replace("÷", "/").replace("−", "-")
    s = re.sub(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])", " * ", s)
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s).replace("$", "")
    if "=" not in s:
        return "no '=' in the step"
    parts = s.split("=")
    for middle in parts[1:-1]:
        if not _PURE.fullmatch(middle.strip()):
            return "more than one equation in the step"
    left = parts[0].rstrip()
    m = _EXPR.search(left)
    if not m or not _NUM.search(m.group(0)):
        return f"no arithmetic expression before '=' in {left[-30:]!r}"
    before = left[: m.start()].rstrip()
    if before and (before[-1] in "+-*/x×X(" or before[-1].isdigit()):
        return f"the expression before '=' is mixed with words: {left[-30:]!r}"
    lhs = m.group(0).strip()
    v = _VALUE.match(parts[-1])
    if not v:
        return f"the right side {parts[-1].strip()[:30]!r} does not start with a number"
    stated = float(v.group(1))
    for middle in parts[1:-1]:
        try:
            if abs(safe_eval(middle.strip()) - stated) > 1e-9:
                return "a chained equation whose parts differ"
        except (ValueError, SyntaxError, ZeroDivisionError):
            return "a chained part is not arithmetic"
    return lhs, stated


class ArithmeticFamily(StepFamily):
    name = "arithmetic"
    step_format = "'<expression> = <value>' (for example '3 * 4 = 12')"
    example_question = "A baker makes 5 trays of 6 rolls each and sells 8 rolls. How many rolls are left?"
    example_steps = ["5 * 6 = 30", "30 - 8 = 22"]
    example_answer = "22"

    def make(self, rng: random.Random, split: Split, index: int) -> StepProblem:
        tpl = rng.choice(TEMPLATES[split])
        name, item = rng.choice(ENTITIES[split]["names"]), rng.choice(ENTITIES[split]["items"])
        question, plan = tpl.draw(rng, name, item)
        vals = run_plan(plan)
        numbers = sorted({float(v) for _, x, y in plan for v in (x, y) if not isinstance(v, str)})
        return StepProblem(
            id="",
            family=self.name,
            split=split,
            question=question,
            gold_steps=render_plan(plan, vals),
            answer=fmt(vals[-1]),
            template=tpl.name,
            entities=[name, item],
            state={"plan": [list(p) for p in plan], "numbers": numbers, "values": vals},
        )

    @staticmethod
    def _plan(problem: StepProblem) -> Plan:
        return [tuple(p) for p in problem.state["plan"]]  # type: ignore[misc]

    def step_regex(self, problem: StepProblem) -> str:
        return r"[0-9(][0-9 ()+*/.-]{0,40} = -?[0-9]+(?:\.[0-9]+)?"

    def answer_regex(self, problem: StepProblem) -> str:
        return r"Answer: -?[0-9]+(?:\.[0-9]+)?"

    def initial_state(self, problem: StepProblem) -> set[float]:
        return set(problem.state["numbers"])

    def check_step(self, problem: StepProblem, state: Any, step: str) -> tuple[bool | None, str, Any]:
        parsed = parse_step(step)
        if isinstance(parsed, str):
            return None, parsed, state
        lhs, stated = parsed
        known: set[float] = state
        try:
            value = safe_eval(lhs)
        except (ValueError, SyntaxError, ZeroDivisionError, RecursionError) as exc:
            return None, f"cannot evaluate {lhs!r}: {type(exc).__name__}", state
        after = known | {stated}
        unknown = [n for n in _NUM.findall(lhs) if float(n) not in known]
        if abs(value - stated) > (0.01 if stated != round(stated) else 1e-9):
            return False, f"{lhs} is {fmt(value)}, not {fmt(stated)}", after
        if unknown:
            return False, f"uses {', '.join(unknown)}, which the problem does not give", after
        valid = set(problem.state["numbers"]) | set(problem.state["values"])
        if not any(abs(stated - v) < 1e-6 for v in valid):
            return False, f"{fmt(stated)} is not a quantity on the way to the answer", after
        return True, "correct", after

    def check_answer(self, problem: StepProblem, state: Any, answer: str | None) -> bool:
        if answer is None:
            return False
        nums = re.findall(r"-?\d+(?:\.\d+)?", answer.replace(",", ""))
        return bool(nums) and abs(float(nums[-1]) - float(problem.answer)) < 1e-6

    def answer_key(self, problem: StepProblem, text: str) -> str | None:
        ans = split_solution(text).answer
        nums = re.findall(r"-?\d+(?:\.\d+)?", (ans or "").replace(",", ""))
        return fmt(float(nums[-1])) if nums else None

    def inject(self, problem: StepProblem, at: int, rng: random.Random) -> tuple[list[str], str, str] | None:
        plan = self._plan(problem)
        if not 0 <= at < len(plan):
            return None
        kind = rng.choice(("slip", "operand", "operator"))
        gold = run_plan(plan)
        if kind == "slip":
            wrong = gold[at] + rng.choice((-1, 1)) * rng.choice((1, 2, 3, 5, 10))
            vals = run_plan(plan, {at: wrong})
            steps = render_plan(plan, vals)
            # the slip step shows the true operands with a wrong result
            steps[at] = render_plan(plan[: at + 1], vals[:at] + [gold[at]], vals[: at + 1])[at]
        elif kind == "operand":
            op, x, y = plan[at]
            if isinstance(y, str) and isinstance(x, str):
                return self.inject(problem, at, rng)
            bump = rng.choice((-2, -1, 1, 2, 3))
            new = (op, x, y + bump) if not isinstance(y, str) else (op, x + bump, y)
            plan = plan[:at] + [new] + plan[at + 1 :]
            vals = run_plan(plan)
            steps = render_plan(plan, vals)
        else:
            op, x, y = plan[at]
            swap = {"+": "-", "-": "+", "*": "+", "/": "*"}[op]
            plan = plan[:at] + [(swap, x, y)] + plan[at + 1 :]
            vals = run_plan(plan)
            steps = render_plan(plan, vals)
        if any(math.isnan(v) or v < 0 for v in vals):
            return None
        return steps, fmt(vals[-1]), kind

    def continue_from(self, problem: StepProblem, steps: list[str]) -> tuple[list[str], str] | None:
        labelled = self.label(problem, "\n".join(steps) + "\nAnswer: ?")
        if any(s.ok is not True for s in labelled.steps):
            return None
        stated = set()
        for s in steps:
            p = parse_step(s)
            if not isinstance(p, str):
                stated.add(p[1])
        plan, vals = self._plan(problem), problem.state["values"]
        rest = [line for line, v in zip(render_plan(plan, vals), vals, strict=True) if v not in stated]
        return rest, problem.answer
