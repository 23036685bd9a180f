"""The proposer's side of the generated-data loop: the prompts that ask the model for math
questions, the defensive parser and filters of what it writes (with the reason for every
rejection), code that computes the true answer of plain arithmetic questions, and the majority
vote over sampled answers that stands in for a label when no code can check one."""

from __future__ import annotations

import ast
import operator
import random
import re
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel

from selflab.tasks.text import numbers

ANSWER_SUFFIX = " Give the final number at the end of your answer."

DEMONSTRATIONS = (
    "QUESTION: A baker makes 6 trays of rolls with 8 rolls on each tray. How many rolls does the baker make?",
    "QUESTION: What is 45 + 27?",
    "QUESTION: Sam had 30 cards and gave away 12. How many cards does Sam have left?",
)
TOPICS = (
    "apples", "trains", "books", "coins", "birds", "chairs", "pencils", "cakes", "boxes", "tickets",
    "flowers", "marbles", "cars", "shirts", "eggs", "stamps", "bottles", "candles", "fish", "toys",
)  # fmt: skip
OPERATIONS = ("addition", "subtraction", "multiplication", "division", "two steps")

PROPOSE_TEMPLATE = (
    "Write one new short math question whose answer is a single whole number. "
    "It should be about {topic} and use {operation}. Do not answer it.\n"
    "Examples:\n{examples}\n"
    "Reply with one line that starts with QUESTION:"
)


class Proposal(BaseModel):
    """One model-written question and what the filters made of it."""

    id: str
    instruction: str
    raw: str
    question: str = ""
    valid: bool = False
    reason: str = ""
    checkable: bool = False
    true_answer: float | None = None
    expression: str = ""


class Solution(BaseModel):
    proposal_id: str
    question: str
    sample: int
    response: str
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: str | None = None
    answer: float | None = None  # the final number; None = abstained


class Vote(BaseModel):
    """The majority over one question's samples."""

    proposal_id: str
    question: str
    samples: int
    answered: int
    majority: float | None = None
    majority_count: int = 0
    agreement: float = 0.0
    no_majority: bool = False  # tie for first place, or no sample gave a number
    checkable: bool = False
    true_answer: float | None = None
    majority_correct: bool | None = None


# -- proposals -----------------------------------------------------------------------------------

_QUESTION = re.compile(r"question\s*[:\-]\s*(.+)", re.I)
_EXPR_PREFIX = re.compile(r"^\s*(?:what\s+is|calculate|compute|find|evaluate)\s+", re.I)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def parse_question(raw: str) -> str | None:
    """The question in a proposal: the text after `QUESTION:` (else the first line with a '?'),
    cut after its first '?' so an appended answer is dropped. None when there is none."""
    text = raw.strip().replace("**", "")
    m = _QUESTION.search(text)
    if m:
        cand = m.group(1).strip()
    else:
        lines = [ln.strip() for ln in text.splitlines() if "?" in ln]
        if not lines:
            return None
        cand = lines[0]
    cand = cand.split("\n")[0].strip().strip('"').strip()
    if "?" in cand:
        cand = cand[: cand.index("?") + 1]
    return cand or None


def _eval_node(node: ast.AST, depth: int = 0) -> float:
    if depth > 8:
        raise ValueError("too deep")
    if isinstance(node, ast.Expression):
        return _eval_node(node.body, depth + 1)
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        if abs(node.value) > 10**6:
            raise ValueError("number too large")
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _eval_node(node.left, depth + 1), _eval_node(node.right, depth + 1)
        if isinstance(node.op, ast.Div) and b == 0:
            raise ValueError("division by zero")
        return _OPS[type(node.op)](a, b)
    raise ValueError("not plain arithmetic")


def check_expression(question: str) -> tuple[str, float] | None:
    """(expression, value) when the question is plain integer arithmetic with a whole-number
    answer ("What is 12 * 7?"), else None. Evaluated on a parsed tree of + - * / only, never eval()."""
    body = _EXPR_PREFIX.sub("", question).rstrip("?").strip().rstrip("=").strip()
    body = body.replace("×", "*").replace("÷", "/").replace("x", "*").replace("X", "*")
    if (
        not body
        or not re.fullmatch(r"[\d\s+\-*/()]+", body)
        or not re.search(r"\d\s*[-+*/]\s*\(?\s*\d", body)
    ):
        return None
    try:
        value = _eval_node(ast.parse(body, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None
    if value != int(value):
        return None
    return " ".join(body.split()), float(int(value))


def proposal_instructions(n: int, seed: int) -> list[str]:
    """`n` proposer prompts, each with a seeded topic, operation and demonstration order."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        demos = list(DEMONSTRATIONS)
        rng.shuffle(demos)
        out.append(
            PROPOSE_TEMPLATE.format(
                topic=rng.choice(TOPICS), operation=rng.choice(OPERATIONS), examples="\n".join(demos)
            )
        )
    return out


def filter_proposals(
    raws: Sequence[tuple[str, str, str]],
    forbidden: Sequence[str] = (),
    min_chars: int = 12,
    max_chars: int = 300,
) -> list[Proposal]:
    """Parse and filter (id, instruction, raw) proposals. Every rejection keeps its reason; the
    first copy of a question wins, later copies are duplicates; `forbidden` prompts (held-out
    evaluation tasks) are rejected as leaks."""
    seen: set[str] = {_norm(d.split(":", 1)[1]) for d in DEMONSTRATIONS}
    demos = set(seen)
    blocked = {_norm(f.replace(ANSWER_SUFFIX, "")) for f in forbidden}
    out = []
    for pid, instruction, raw in raws:
        p = Proposal(id=pid, instruction=instruction, raw=raw)
        q = parse_question(raw)
        if q is None:
            out.append(p.model_copy(update={"reason": "no question found"}))
            continue
        key = _norm(q)
        reason = ""
        if len(q) < min_chars:
            reason = "too short"
        elif len(q) > max_chars:
            reason = "too long"
        elif not q.endswith("?"):
            reason = "not a question"
        elif not re.search(r"\d", q):
            reason = "no number in the question"
        elif key in demos:
            reason = "copy of a demonstration"
        elif key in blocked:
            reason = "held-out evaluation prompt (leak)"
        elif key in seen:
            reason = "duplicate"
        if reason:
            out.append(p.model_copy(update={"question": q, "reason": reason}))
            continue
        seen.add(key)
        checked = check_expression(q)
        upd: dict = {"question": q, "valid": True, "reason": "ok"}
        if checked is not None:
            upd.update(checkable=True, expression=checked[0], true_answer=checked[1])
        out.append(p.model_copy(update=upd))
    return out


# -- voting --------------------------------------------------------------------------------------


def final_number(text: str) -> float | None:
    found = numbers(text)
    return float(found[-1]) if found else None


def majority_vote(answers: Sequence[float | None]) -> tuple[float | None, int, bool]:
    """(majority answer, its count, no_majority). Abstentions (None) never win; a tie for first
    place is no majority."""
    c = Counter(a for a in answers if a is not None)
    if not c:
        return None, 0, True
    ranked = c.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, ranked[0][1], True
    return ranked[0][0], ranked[0][1], False


def vote(proposal: Proposal, sols: Sequence[Solution]) -> Vote:
    answers = [s.answer for s in sols]
    maj, count, none = majority_vote(answers)
    v = Vote(
        proposal_id=proposal.id,
        question=proposal.question,
        samples=len(sols),
        answered=sum(1 for a in answers if a is not None),
        majority=maj,
        majority_count=count,
        agreement=count / len(sols) if sols and not none else 0.0,
        no_majority=none,
        checkable=proposal.checkable,
        true_answer=proposal.true_answer,
    )
    if proposal.checkable and maj is not None and proposal.true_answer is not None:
        v.majority_correct = abs(maj - proposal.true_answer) < 1e-6
    elif proposal.checkable:
        v.majority_correct = False
    return v
