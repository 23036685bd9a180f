"""Judges: models grading and comparing responses, with every parse failure made explicit.

- `RubricJudge`: pointwise, rubric prompt (Self-Rewarding additive 5-point by default).
- `PairwiseLLMJudge`: which of two responses is better, asked in both orders.
- `LikelihoodJudge`: score tokens' probabilities instead of generation (local models).
- `Jury`: several judges aggregated (seeds, personas, models).
- `DebateJudge`, `MetaJudge`: debate with a deciding judge; which of two judgments is better.
- `build_judge(kind, model, **options)`: the same from a string such as "jury:personas:5".
"""

from selflab.judges.pairwise import PairwiseLLMJudge
from selflab.judges.rubric import RubricJudge
from selflab.judges.types import Judgment, PairwiseItem, PairwiseJudge, PointwiseItem, PointwiseJudge

__all__ = [
    "Judgment",
    "PairwiseItem",
    "PairwiseJudge",
    "PairwiseLLMJudge",
    "PointwiseItem",
    "PointwiseJudge",
    "RubricJudge",
]
