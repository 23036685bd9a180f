"""Parse-failure rate of each judge on the embedded model, with and without the verdict constraint.

Run: python benchmarks/judge_parsing.py [--pairs 40] [--max-new-tokens 64] [--judges rubric,pairwise,meta,debate]

The workload is the judge benchmark's pairs (one verified-correct and one wrong answer to the same
question, seeded): pairwise and debate judges compare each pair, rubric judges grade both answers,
meta judges compare two rubric-style judgments of the correct answer ("Score: 5" against
"Score: 1"). Every judge runs as `build_judge(kind, model, constrain=...)` would build it, with
free reasoning (`--max-new-tokens` budget), once with the constraint on and once off, in one run.
A judgment counts as a parse failure when it has no score/verdict and did not abstain. Accuracy
(verdicts/scores that pick the right answer, among all judgments) is printed too, so a constraint
that merely forces a random verdict is visible as such.
The last line is machine-readable: RESULT judge=on/off parse failure rates.
"""

from __future__ import annotations

import argparse
import time

from selflab.evalbench.items import load_items
from selflab.judges import MetaItem, PairwiseItem, PointwiseItem, build_judge
from selflab.models import load_model


def workload(n: int, seed: int) -> list[PairwiseItem]:
    pairs = []
    for item in load_items(max(n, 8) * 2, seed=seed):
        for p in item.pairs:
            a, b = item.candidate(p.a).response, item.candidate(p.b).response
            pairs.append(
                PairwiseItem(prompt=item.task.prompt, response_a=a, response_b=b, id=f"{p.id}|{p.better}")
            )
    return pairs[:n]


def run(
    kind: str, model, pairs: list[PairwiseItem], constrain: bool, max_new_tokens: int
) -> tuple[int, int, int]:
    """(judgments, parse failures, right decisions) for one judge kind and setting."""
    options = {"constrain": constrain}
    if kind != "debate":
        options["max_new_tokens"] = max_new_tokens
    judge = build_judge(kind, model, **options)
    if kind in ("pairwise", "debate"):
        out = judge.compare(pairs)  # type: ignore[attr-defined]
        right = sum(j.verdict == p.id.split("|")[1] for j, p in zip(out, pairs, strict=True))
    elif kind == "rubric":
        items = [
            PointwiseItem(prompt=p.prompt, response=r, id=f"{p.id}:{side}")
            for p in pairs
            for side, r in (("A", p.response_a), ("B", p.response_b))
        ]
        out = judge.judge(items)  # type: ignore[attr-defined]
        right = 0
        for k, p in enumerate(pairs):
            sa, sb = out[2 * k].score, out[2 * k + 1].score
            better = p.id.split("|")[1]
            right += sa is not None and sb is not None and (sa > sb if better == "A" else sb > sa)
    else:
        items = [
            MetaItem(
                prompt=p.prompt,
                response=p.response_a if p.id.endswith("A") else p.response_b,
                judgment_a="The reply is correct and answers the question.\nScore: 5",
                judgment_b="The reply is wrong.\nScore: 1",
            )
            for p in pairs
        ]
        out = judge.compare_judgments(items)  # type: ignore[attr-defined]
        right = sum(j.verdict == "A" for j in out)
    failures = sum(j.parse_error is not None and not j.abstained for j in out)
    return len(out), failures, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--judges", default="rubric,pairwise,meta,debate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_model(args.model)
    pairs = workload(args.pairs, args.seed)
    result = []
    for kind in args.judges.split(","):
        for constrain in (False, True):
            t = time.perf_counter()
            n, failed, right = run(kind, model, pairs, constrain, args.max_new_tokens)
            print(
                f"{kind:9s} constrain={str(constrain):5s} judgments={n:3d} parse_failures={failed:3d} "
                f"({failed / n:.2f}) right={right / n:.2f} time={time.perf_counter() - t:.0f}s",
                flush=True,
            )
            result.append(f"{kind}_{'on' if constrain else 'off'}={failed / n:.3f}")
    print("RESULT " + " ".join(result))


if __name__ == "__main__":
    main()
