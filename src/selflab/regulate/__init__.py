"""Regulate: a constitution that models amend themselves, scored by objective safety measures.

- `constitution`: versioned principles with provenance, YAML files, diffs.
- `patches`: the amendment format and its defensive parser.
- `datasets`, `refusal`, `evaluate`: harmful/jailbreak/benign sets, refusal by rule and by judge.
- `council`: single model, consortium and debate decisions with a meta-judge and a vote.
- `atomic`, `refine`, `train`: the three experiments and constitution-driven training, as loops.
"""

from selflab.regulate.constitution import (
    Constitution,
    Principle,
    Provenance,
    VersionStore,
    diff,
    load_constitution,
    parse_constitution,
)
from selflab.regulate.patches import Patch, apply_patch, parse_patch

__all__ = [
    "Constitution",
    "Patch",
    "Principle",
    "Provenance",
    "VersionStore",
    "apply_patch",
    "diff",
    "load_constitution",
    "parse_constitution",
    "parse_patch",
]
