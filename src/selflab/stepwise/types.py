"""Records of step-wise work: a problem with a worked solution, a solution split into steps, and the
code's label for every step.

Why a record per step: process supervision (Lightman et al.; Math-Shepherd; ProcessBench) needs to
know *where* a solution first goes wrong, not only whether its answer is right. Labels come from
code, so they are ground truth; a step code cannot read is recorded as unparsable (`ok=None`),
never guessed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "heldout"]
SolutionStatus = Literal["ok", "empty", "no_steps", "no_answer"]


class StepProblem(BaseModel):
    """One problem of a step family. `state` holds what the family's verifier needs (numbers and
    the gold computation, block stacks, dates); `gold_steps` is a correct worked solution."""

    model_config = ConfigDict(frozen=True)

    id: str
    family: str
    split: Split
    question: str
    gold_steps: list[str]
    answer: str
    template: str
    entities: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)


class StepLabel(BaseModel):
    """The code's verdict on one step: True (correct), False (wrong), None (unparsable)."""

    index: int
    text: str
    ok: bool | None
    reason: str = ""


class LabelledSolution(BaseModel):
    """A solution split into steps, each labelled by code.

    `first_error` is the index of the first step that is not correct (wrong or unparsable), or -1
    when every step is correct (the ProcessBench convention). `status` says what the splitter met:
    an empty text, no step lines, or no `Answer:` line."""

    problem_id: str
    family: str
    text: str
    steps: list[StepLabel] = Field(default_factory=list)
    answer_text: str | None = None
    answer_ok: bool | None = None
    status: SolutionStatus = "ok"
    trailing_lines: int = 0  # lines after the Answer line, ignored and counted

    @property
    def first_error(self) -> int:
        for s in self.steps:
            if s.ok is not True:
                return s.index
        return -1

    @property
    def unparsable(self) -> int:
        return sum(1 for s in self.steps if s.ok is None)

    @property
    def fully_parsed(self) -> bool:
        return self.status != "empty" and self.unparsable == 0 and bool(self.steps)

    @property
    def correct(self) -> bool:
        """Final answer right (the outcome label)."""
        return bool(self.answer_ok)


class BenchSolution(BaseModel):
    """One item of the step-level benchmark: a problem, a solution and its code labels.
    `origin` is "injected" (a gold solution with a code-made mistake at `injected_at`, or none
    when -1), or "model" (written by a model, labelled by code)."""

    id: str
    problem: StepProblem
    labelled: LabelledSolution
    origin: Literal["injected", "model"]
    injected_at: int | None = None
    error_kind: str = ""
