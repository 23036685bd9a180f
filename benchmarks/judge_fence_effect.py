"""Does the injection fence or the verdict constraint change the embedded model's rubric scores?

Grades the first 24 answers of a verified-sft run's iteration-0 evaluation (greedy, direct
"Score:" mode, as the loop's self-judge does) under the four combinations of `constrain` and
`fence`, and prints the score distribution of each. Usage:

    python benchmarks/judge_fence_effect.py runs/main/records/iter-0.evaluate.jsonl
"""

from __future__ import annotations

import collections
import json
import sys

from selflab.judges.rubric import RubricJudge
from selflab.judges.types import PointwiseItem
from selflab.models import SamplingParams, load_model


def main(path: str, n: int = 24) -> None:
    model = load_model("smollm2-135m")
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if '"response"' in line][:n]
    items = [PointwiseItem(prompt=r["prompt"], response=r["response"], id=str(i)) for i, r in enumerate(rows)]
    for constrain in (True, False):
        for fence in ("boundary", "none"):
            judge = RubricJudge(
                model,
                template="rubric_additive",
                sampling=SamplingParams(temperature=0.0, max_new_tokens=4),
                samples=1,
                seed=0,
                direct=True,
                constrain=constrain,
                fence=fence,
            )
            scores = collections.Counter(j.score for j in judge.judge(items))
            print(f"constrain={constrain} fence={fence}: {dict(sorted(scores.items(), key=str))}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/main/records/iter-0.evaluate.jsonl")
