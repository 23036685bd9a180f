"""`build_judge(kind, model, **options)`: the public way to make a judge from a short string.

The kinds and their typed options live with each judge (see registry.py); this module keeps the
historical import path `selflab.judges.factory.build_judge`.
"""

from __future__ import annotations

from selflab.judges.registry import build_judge, judge_kinds, kind_help, options_help

__all__ = ["build_judge", "judge_kinds", "kind_help", "options_help"]
