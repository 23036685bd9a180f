"""Judges: models grading and comparing responses, with every parse failure made explicit.

- `RubricJudge`: pointwise, rubric prompt (Self-Rewarding additive 5-point by default).
- `PairwiseLLMJudge`: which of two responses is better, asked in both orders.
- `LikelihoodJudge`: score tokens' probabilities instead of generation (local models).
- `Jury`: several judges aggregated (seeds, personas, models).
- `DebateJudge`, `MetaJudge`: debate with a deciding judge; which of two judgments is better.
- `build_judge(kind, model, **options)`: the same from a string such as "jury:personas:5"; each
  kind declares its typed options (`options_help()` lists them).
"""

from selflab.judges.debate import DebateJudge
from selflab.judges.factory import build_judge, options_help
from selflab.judges.jury import DualJudge, Jury
from selflab.judges.likelihood import LikelihoodJudge
from selflab.judges.meta import MetaJudge
from selflab.judges.pairwise import PairwiseLLMJudge
from selflab.judges.parsing import parse_meta, parse_pairwise, parse_score
from selflab.judges.personas import builtin_personas, generate_personas, load_personas, pick_personas
from selflab.judges.rubric import RubricJudge
from selflab.judges.types import (
    Judge,
    Judgment,
    MetaItem,
    PairwiseItem,
    PairwiseJudge,
    PointwiseItem,
    PointwiseJudge,
)

__all__ = [
    "DebateJudge",
    "DualJudge",
    "Judge",
    "Judgment",
    "Jury",
    "LikelihoodJudge",
    "MetaItem",
    "MetaJudge",
    "PairwiseItem",
    "PairwiseJudge",
    "PairwiseLLMJudge",
    "PointwiseItem",
    "PointwiseJudge",
    "RubricJudge",
    "build_judge",
    "options_help",
    "builtin_personas",
    "generate_personas",
    "load_personas",
    "parse_meta",
    "parse_pairwise",
    "parse_score",
    "pick_personas",
]
