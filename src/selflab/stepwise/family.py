"""What every step family provides: seeded problems split by template and entity, a step parser,
a step verifier that carries state from step to step, a final-answer check, and code-made
mistakes at a chosen step (for the benchmark's controlled first errors).

`label()` is the one labelling path every caller uses (benchmark, loop, search), so a step is
judged the same way everywhere.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from selflab.models.types import Constraint, Message, assistant, user
from selflab.stepwise.splitter import join_steps, split_solution
from selflab.stepwise.types import LabelledSolution, Split, StepLabel, StepProblem


class StepFamily(ABC):
    """One kind of step-wise problem. Subclasses are stateless; all randomness comes from `seed`."""

    name: ClassVar[str]
    answer_required: ClassVar[bool] = True
    step_format: ClassVar[str] = ""  # how one step looks, shown in prompts and judge prompts
    # A worked example from templates and entities used by NEITHER split (shown in prompts).
    example_question: ClassVar[str] = ""
    example_steps: ClassVar[list[str]] = []
    example_answer: ClassVar[str] = ""

    # -- problems -----------------------------------------------------------------------------
    @abstractmethod
    def make(self, rng: random.Random, split: Split, index: int) -> StepProblem:
        """One problem from the templates and entities of `split`."""

    def problems(self, n: int, seed: int, split: Split) -> list[StepProblem]:
        """`n` distinct problems of one split (same seed -> same problems)."""
        rng = random.Random(f"{self.name}|{split}|{seed}")
        out: list[StepProblem] = []
        seen: set[str] = set()
        for i in range(50 * n + 50):
            if len(out) == n:
                break
            p = self.make(rng, split, i)
            if p.question not in seen:
                seen.add(p.question)
                out.append(p.model_copy(update={"id": f"{self.name}-{split}-{seed}-{len(out)}"}))
        return out

    def rules(self) -> str:
        answer = "Answer: ..." if self.answer_required else "Answer: done"
        return (
            "Solve the problem step by step. Write each step on its own line as "
            f"{self.step_format}, and nothing else. After the last step write '{answer}'."
        )

    def messages(self, problem: StepProblem) -> tuple[Message, ...]:
        """The chat prompt: the rules with a worked example as an earlier turn (a small model
        copies a format it has "written" far better than one it was told), then the problem."""
        ex = join_steps(self.example_steps, self.example_answer)
        return (
            user(f"{self.rules()}\n\nProblem: {self.example_question}"),
            assistant(ex),
            user(f"Problem: {problem.question}"),
        )

    # -- step format for constrained decoding ---------------------------------------------------
    def step_regex(self, problem: StepProblem) -> str | None:
        """A regular expression (llguidance / Rust syntax, no newline) for one step line of this
        problem in the format the prompt asks for; None: no constraint for this family."""
        return None

    def answer_regex(self, problem: StepProblem) -> str:
        return "Answer: done" if not self.answer_required else r"Answer: [^\n]{1,40}"

    def line_constraint(self, problem: StepProblem) -> Constraint | None:
        """One line, a step or the answer line, ended by a newline (the decoder stops there)."""
        step = self.step_regex(problem)
        return None if step is None else Constraint.regex(f"(?:{step}|{self.answer_regex(problem)})\n")

    def solution_constraint(self, problem: StepProblem, max_steps: int = 8) -> Constraint | None:
        """A whole solution: 1..max_steps step lines, then the answer line."""
        step = self.step_regex(problem)
        if step is None:
            return None
        return Constraint.regex(f"(?:(?:{step})\n){{1,{max_steps}}}{self.answer_regex(problem)}\n?")

    def gold_text(self, problem: StepProblem) -> str:
        return join_steps(problem.gold_steps, problem.answer)

    # -- verification ---------------------------------------------------------------------------
    @abstractmethod
    def initial_state(self, problem: StepProblem) -> Any:
        """The verifier's state before the first step."""

    @abstractmethod
    def check_step(self, problem: StepProblem, state: Any, step: str) -> tuple[bool | None, str, Any]:
        """(ok, reason, next state): ok is None when the step cannot be parsed (then the state is
        unchanged); False when it parses but is wrong."""

    @abstractmethod
    def check_answer(self, problem: StepProblem, state: Any, answer: str | None) -> bool:
        """Whether the solution ends right, given the state after its last step."""

    def label(self, problem: StepProblem, text: str) -> LabelledSolution:
        """Split `text` and label every step by code. Never raises on model output."""
        parts = split_solution(text)
        out = LabelledSolution(problem_id=problem.id, family=self.name, text=text)
        if parts.empty:
            return out.model_copy(update={"status": "empty", "answer_ok": False})
        state = self.initial_state(problem)
        labels = []
        for i, step in enumerate(parts.steps):
            try:
                ok, reason, state = self.check_step(problem, state, step)
            except Exception as exc:  # noqa: BLE001 - a verifier bug on odd input is recorded, not raised
                ok, reason = None, f"verifier error: {type(exc).__name__}: {exc}"
            labels.append(StepLabel(index=i, text=step, ok=ok, reason=reason))
        status = "ok"
        if not labels:
            status = "no_steps"
        elif parts.answer is None and self.answer_required:
            status = "no_answer"
        try:
            answer_ok = self.check_answer(problem, state, parts.answer)
        except Exception:  # noqa: BLE001
            answer_ok = False
        return out.model_copy(
            update={
                "steps": labels,
                "answer_text": parts.answer,
                "answer_ok": answer_ok,
                "status": status,
                "trailing_lines": parts.trailing_lines,
            }
        )

    def answer_key(self, problem: StepProblem, text: str) -> str | None:
        """What majority voting compares: the normalised final answer (None when there is none)."""
        ans = split_solution(text).answer
        return " ".join(ans.lower().split()) if ans else None

    # -- controlled mistakes ----------------------------------------------------------------------
    @abstractmethod
    def inject(self, problem: StepProblem, at: int, rng: random.Random) -> tuple[list[str], str, str] | None:
        """A solution (steps, answer, error kind) that follows the gold solution up to step `at`,
        makes a mistake there and continues consistently from it; None when no mistake fits."""

    @abstractmethod
    def continue_from(self, problem: StepProblem, steps: list[str]) -> tuple[list[str], str] | None:
        """A correct continuation (steps, answer) by code after correct steps `steps`; None when
        the prefix is not all correct or cannot be continued."""

    def injected(self, problem: StepProblem, at: int, rng: random.Random) -> tuple[str, str] | None:
        """Text and kind of a solution whose code-labelled first error is exactly `at` (checked)."""
        for _ in range(8):
            made = self.inject(problem, at, rng)
            if made is None:
                return None
            steps, answer, kind = made
            text = join_steps(steps, answer)
            if self.label(problem, text).first_error == at:
                return text, kind
        return None
