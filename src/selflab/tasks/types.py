"""A verifiable task: a prompt whose answer code can check, with no human label.

The verifier is stored as data (a registered name plus parameters), so tasks round-trip through
JSONL files and a checked-in task file is checked the same way as a freshly generated one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskKind = Literal["arithmetic", "word_problem", "fact", "instruction"]


class Verification(BaseModel):
    """The verdict of a verifier on one response, with the reason a person can read."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    reason: str


class Task(BaseModel):
    """One verifiable task.

    `reference` is a response known to pass the verifier; `answer` is the canonical answer value
    (a number, a name, a year) where one exists; `verifier` names a function in
    `selflab.tasks.verifiers.VERIFIERS` and `params` are its arguments.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: TaskKind
    prompt: str
    reference: str
    answer: str | float | int | None = None
    verifier: str
    params: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def verify(self, response: str) -> Verification:
        """Check a response; never raises on odd model output."""
        from selflab.tasks.verifiers import run_verifier

        return run_verifier(self.verifier, response, self.params)

    def check(self, response: str) -> bool:
        return self.verify(response).ok

    def reason(self, response: str) -> str:
        return self.verify(response).reason


def check(task: Task, response: str) -> bool:
    """Functional form of `Task.check`."""
    return task.check(response)
