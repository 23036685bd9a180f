"""Arithmetic and word problems with computed answers (integers, so checking is exact)."""

from __future__ import annotations

import random

from selflab.tasks.types import Task

_OPS = ("+", "-", "*", "//", "chain")


def _arith(i: int, rng: random.Random) -> Task:
    op = _OPS[i % len(_OPS)]
    if op == "+":
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        expr, ans = f"{a} + {b}", a + b
    elif op == "-":
        a, b = rng.randint(50, 999), rng.randint(10, 499)
        expr, ans = f"{a} - {b}", a - b
    elif op == "*":
        a, b = rng.randint(3, 99), rng.randint(3, 29)
        expr, ans = f"{a} * {b}", a * b
    elif op == "//":
        b, q = rng.randint(2, 19), rng.randint(3, 60)
        expr, ans = f"{b * q} / {b}", q
    else:
        a, b, c = rng.randint(2, 20), rng.randint(2, 12), rng.randint(1, 50)
        expr, ans = f"{a} * {b} + {c}", a * b + c
    return Task(
        id=f"arith-{i}",
        kind="arithmetic",
        prompt=f"What is {expr}? Give the final number at the end of your answer.",
        reference=f"{expr} = {ans}. The answer is {ans}.",
        answer=ans,
        verifier="numeric",
        params={"answer": ans},
        meta={"expression": expr, "op": op},
    )


def arithmetic_tasks(n: int, seed: int = 0) -> list[Task]:
    """`n` arithmetic questions (addition, subtraction, multiplication, exact division, a*b+c),
    cycling through the operations; ids are `arith-<seed>-<i>`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = _arith(i, rng)
        out.append(t.model_copy(update={"id": f"arith-{seed}-{i}"}))
    return out


_NAMES = ("Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Priya", "Lucas", "Zoe", "Ivan")
_ITEMS = ("apples", "books", "marbles", "stamps", "pencils", "cookies", "coins", "stickers")
PEOPLE, THINGS = _NAMES, _ITEMS  # the entities of a word problem (for the held-out split)


def _word_problem(i: int, rng: random.Random) -> tuple[str, str, int, str]:
    """(prompt, worked reference, answer, template name)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = i % 6
    if kind == 0:
        a, b = rng.randint(5, 60), rng.randint(2, 40)
        return (
            f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?",
            f"{name} has {a} + {b} = {a + b} {item}. The answer is {a + b}.",
            a + b,
            "buy_more",
        )
    if kind == 1:
        a = rng.randint(20, 90)
        b = rng.randint(2, a - 1)
        return (
            f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} are left?",
            f"{a} - {b} = {a - b} {item} are left. The answer is {a - b}.",
            a - b,
            "give_away",
        )
    if kind == 2:
        boxes, per = rng.randint(3, 12), rng.randint(4, 25)
        return (
            f"There are {boxes} boxes with {per} {item} in each box. How many {item} are there in total?",
            f"{boxes} * {per} = {boxes * per}. The answer is {boxes * per}.",
            boxes * per,
            "boxes",
        )
    if kind == 3:
        kids, per = rng.randint(2, 9), rng.randint(3, 15)
        total = kids * per
        return (
            f"{name} shares {total} {item} equally among {kids} children. How many {item} does each child get?",
            f"{total} / {kids} = {per}. The answer is {per}.",
            per,
            "share",
        )
    if kind == 4:
        price, qty, paid_extra = rng.randint(2, 15), rng.randint(2, 8), rng.randint(1, 20)
        cost = price * qty
        paid = cost + paid_extra
        return (
            f"{name} buys {qty} {item} at {price} dollars each and pays with {paid} dollars. "
            f"How much change does {name} get, in dollars?",
            f"The cost is {qty} * {price} = {cost}, so the change is {paid} - {cost} = {paid_extra}. "
            f"The answer is {paid_extra}.",
            paid_extra,
            "change",
        )
    start, gain, loss = rng.randint(10, 50), rng.randint(5, 30), rng.randint(1, 20)
    ans = start + gain - loss
    return (
        f"{name} starts the week with {start} {item}, finds {gain} more on Tuesday and loses {loss} on Friday. "
        f"How many {item} does {name} have at the end of the week?",
        f"{start} + {gain} - {loss} = {ans}. The answer is {ans}.",
        ans,
        "two_step",
    )


def word_problem_tasks(n: int, seed: int = 0) -> list[Task]:
    """`n` one- and two-step word problems with integer answers; ids are `word-<seed>-<i>`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt, reference, ans, template = _word_problem(i, rng)
        out.append(
            Task(
                id=f"word-{seed}-{i}",
                kind="word_problem",
                prompt=prompt + " Give the final number at the end of your answer.",
                reference=reference,
                answer=ans,
                verifier="numeric",
                params={"answer": ans},
                meta={"template": template},
            )
        )
    return out
