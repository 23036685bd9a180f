"""Step-wise labelling, judging and training: problems whose every step code can check.

Families (`FAMILIES`): multi-step arithmetic word problems (`expression = value`), blocks-world
plans (`move X onto Y`, legal and on a shortest way to the goal), calendar shifts
(`date + N days = date`) and detective deductions (`rule out <suspect>: <reason>`, consistent with
the clues and statements). Each ships a seeded generator with a train / held-out split by template
and entity, a step splitter and a step verifier.

```python
from selflab.stepwise import get_family, step_problems
fam = get_family("blocks")
problems = step_problems("blocks", 10, seed=0, split="heldout")
labelled = fam.label(problems[0], model_text)   # per-step ok / wrong / unparsable, first error
```
"""

from __future__ import annotations

from selflab.errors import ConfigError
from selflab.stepwise.arithmetic import ArithmeticFamily
from selflab.stepwise.blocks import BlocksFamily
from selflab.stepwise.dates import DatesFamily
from selflab.stepwise.detective import DetectiveFamily
from selflab.stepwise.family import StepFamily
from selflab.stepwise.types import BenchSolution, LabelledSolution, Split, StepLabel, StepProblem

FAMILIES: dict[str, StepFamily] = {
    f.name: f for f in (ArithmeticFamily(), BlocksFamily(), DatesFamily(), DetectiveFamily())
}


def get_family(name: str) -> StepFamily:
    if name not in FAMILIES:
        raise ConfigError(f"no step family named {name!r}", f"choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def step_problems(family: str, n: int, seed: int = 0, split: Split = "train") -> list[StepProblem]:
    """`n` distinct seeded problems of one family and split (the task generator)."""
    if split not in ("train", "heldout"):
        raise ConfigError(f"unknown split {split!r}", "use train or heldout")
    return get_family(family).problems(n, seed, split)


__all__ = [
    "FAMILIES",
    "BenchSolution",
    "LabelledSolution",
    "Split",
    "StepFamily",
    "StepLabel",
    "StepProblem",
    "get_family",
    "step_problems",
]
