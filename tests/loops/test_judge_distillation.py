"""Judge distillation: SFT targets from jury labels (drops counted), the teacher's accuracy by hand,
held-out/train disjointness, and a two-iteration run (SFT phase then DPO phase) on the tiny llama."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.judges.meta import MetaJudge
from selflab.loops import benchmark as bm
from selflab.loops import judge_distillation as jd
from selflab.loops import judging
from selflab.loops.base import get_loop, open_run
from selflab.models.testing import tiny_llama
from selflab.runs import RunDir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _labels() -> list[jd.LabelRecord]:
    return [
        jd.LabelRecord(
            unit_id="c", mode="pointwise", prompt="q", response="right", jury_score=4.4, correct=True
        ),
        jd.LabelRecord(
            unit_id="s", mode="pointwise", prompt="q", response="wrong", jury_score=3.0, correct=False
        ),
        jd.LabelRecord(
            unit_id="o", mode="pointwise", prompt="q", response="off", jury_score=None, correct=False
        ),
        jd.LabelRecord(
            unit_id="p0",
            mode="pairwise",
            prompt="q",
            response="wrong",
            response_b="right",
            jury_verdict="B",
            better="B",
        ),
        jd.LabelRecord(
            unit_id="p1",
            mode="pairwise",
            prompt="q",
            response="right",
            response_b="off",
            jury_verdict="tie",
            better="A",
        ),
        jd.LabelRecord(
            unit_id="p2",
            mode="pairwise",
            prompt="q",
            response="off",
            response_b="x",
            jury_verdict=None,
            better="B",
        ),
    ]


def test_sft_examples_from_jury_labels() -> None:
    examples, counts = jd.sft_examples(_labels(), (0.0, 5.0), 4, "rubric_additive")
    assert counts == {"sft_unlabeled": 2, "sft_ties": 1, "sft_pointwise": 2, "sft_pairwise": 2}
    assert [e.response for e in examples] == ["Score: 4", "Score: 3", "Verdict: [[B]]", "Verdict: [[A]]"]
    assert "Score:" in examples[0].prompt[0].content and "right" in examples[0].prompt[0].content
    # the swapped order shows "right" first, so the verdict flips to A
    ab, ba = examples[2].prompt[0].content, examples[3].prompt[0].content
    assert ab.index("wrong") < ab.index("right") and ba.index("right") < ba.index("wrong")


def test_sft_scores_are_written_on_the_judge_templates_scale() -> None:
    """The 0-5 jury's labels taught a 1-5 template (`judge_template: rubric_correctness`) to say
    "Score: 0", a score outside the scale the judge is evaluated on: labels are mapped onto it."""
    labels = [
        jd.LabelRecord(unit_id=u, mode="pointwise", prompt="q", response=u, jury_score=s, correct=s > 2.5)
        for u, s in (("low", 0.0), ("mid", 2.5), ("top", 5.0))
    ]
    examples, _ = jd.sft_examples(labels, (0.0, 5.0), 4, "rubric_correctness")
    assert [e.response for e in examples] == ["Score: 1", "Score: 3", "Score: 5"]
    same, _ = jd.sft_examples(labels, (0.0, 5.0), 4, "rubric_additive")  # the default: unchanged
    assert [e.response for e in same] == ["Score: 0", "Score: 2", "Score: 5"]


def test_verified_labels_replace_only_wrong_tied_or_missing_decisions() -> None:
    fixed = jd.verified_labels(_labels(), (0.0, 5.0))
    assert [r.jury_score for r in fixed if r.mode == "pointwise"] == [4.4, 0.0, 0.0]
    assert [r.jury_verdict for r in fixed if r.mode == "pairwise"] == ["B", "A", "B"]
    assert [r.corrected_from for r in fixed] == [None, "3.0", "None", None, "tie", "None"]
    examples, counts = jd.sft_examples(fixed, (0.0, 5.0), 4, "rubric_additive")
    assert counts["sft_unlabeled"] == 0 and counts["sft_ties"] == 0
    assert [e.source for e in examples][:3] == ["jury", "verifier", "verifier"]


def test_teacher_accuracy_by_hand() -> None:
    acc = jd.teacher_accuracy(_labels(), (0.0, 5.0))
    # pointwise: 4.4 > 2.5 and correct -> right; 3.0 > 2.5 but wrong -> wrong; None missing
    assert acc["teacher_pointwise_accuracy"] == 0.5 and acc["teacher_pointwise_accuracy_missing"] == 1
    # pairwise: B == B -> 1, tie -> 0.5, None missing
    assert acc["teacher_pair_accuracy"] == 0.75 and acc["teacher_pair_accuracy_missing"] == 1


def test_training_items_share_no_entity_with_the_heldout_benchmark() -> None:
    from selflab.evalbench.items import generate_items, load_items
    from selflab.tasks.splits import entities

    held, _ = bm.bench_slice(40)
    units, pairs = bm.train_bench(40, seed=3)
    assert len({u.item_id for u in units}) == 40 and pairs
    assert not {u.prompt for u in units} & {u.prompt for u in held}
    tasks = {it.id: it.task for it in [*load_items(), *generate_items(40 * 4 + 8, seed=3)]}
    ents = lambda us: {e for u in us for e in entities(tasks[u.item_id])}  # noqa: E731
    assert not ents(units) & ents(held)


def test_unbiased_majority_breaks_ties_at_random() -> None:
    assert jd.unbiased_majority([3.0, 3.0, 1.0], seed=0) == (3.0, False)
    assert jd.unbiased_majority([], seed=0) == (None, False)
    picks = {jd.unbiased_majority([1.0, 4.0], seed=s)[0] for s in range(40)}
    assert picks == {1.0, 4.0}  # neither end is favoured systematically


def test_registry() -> None:
    assert get_loop("judge-distillation") is jd.JudgeDistillationLoop


def _tiny_config(tiny: Path, **overrides: object) -> jd.JudgeDistillationConfig:
    """The smallest judge-distillation run on the tiny model: one optimiser step per phase."""
    step = {"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3}
    return jd.JudgeDistillationConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            train_items=2,
            jury="jury:personas:2",
            bench_items=1,
            eval_tasks=2,
            control_tasks=0,
            eval_max_new_tokens=8,
            judge_max_new_tokens=3,
            sft_train=step,
            dpo_train=step,
            report=False,
            **overrides,
        )
    )


def test_sft_then_dpo_on_tiny(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selflab.judges.jury import Jury

    real_judge, real_compare = Jury.judge, Jury.compare

    def jury_judge(self, items):  # type: ignore[no-untyped-def]
        """Real jury calls, then deterministic labels (a random tiny model writes no scores)."""
        out = real_judge(self, items)
        return [
            j.model_copy(
                update={
                    "score": float(i % 6),
                    "parse_error": None,
                    "details": {
                        **j.details,
                        "votes": [{**v, "score": float(i % 6)} for v in j.details["votes"]],
                    },
                }
            )
            for i, j in enumerate(out)
        ]

    def jury_compare(self, items):  # type: ignore[no-untyped-def]
        out = real_compare(self, items)
        return [
            j.model_copy(update={"verdict": ["A", "B", "tie"][i % 3], "parse_error": None})
            for i, j in enumerate(out)
        ]

    real_each = judging.judge_answers

    def judge_each(model, answers, samples, *a, **k):  # type: ignore[no-untyped-def]
        out = real_each(model, answers, samples, *a, **k)
        return [
            x.model_copy(
                update={
                    "scores": [float((i + j) % 6) for j in range(samples)],
                    "judgments": [f"Reason {j}.\nScore: {(i + j) % 6}" for j in range(samples)],
                }
            )
            for i, x in enumerate(out)
        ]

    real_meta = MetaJudge.compare_judgments

    def meta(self, items):  # type: ignore[no-untyped-def]
        return [
            j.model_copy(update={"verdict": ["A", "B", None][i % 3]})
            for i, j in enumerate(real_meta(self, items))
        ]

    monkeypatch.setattr(Jury, "judge", jury_judge)
    monkeypatch.setattr(Jury, "compare", jury_compare)
    monkeypatch.setattr(judging, "judge_answers", judge_each)
    monkeypatch.setattr(MetaJudge, "compare_judgments", meta)
    cfg = _tiny_config(tiny, iterations=2)
    metrics = open_run(jd.JudgeDistillationLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert len(done) == 1 + 2 * len(jd.JudgeDistillationLoop.stages)
    # iteration 1: SFT on jury labels
    labels = run.records("iter-1.label").read(jd.LabelRecord)
    n_point = sum(1 for x in labels if x.mode == "pointwise")
    n_pair = sum(1 for x in labels if x.mode == "pairwise")
    assert n_point >= 5 and n_pair >= 3
    b1 = done["iter-1.build"].info
    ties = sum(1 for i in range(n_pair) if i % 3 == 2)
    assert (
        b1["sft_pointwise"] == n_point
        and b1["sft_ties"] == ties
        and b1["sft_pairwise"] == 2 * (n_pair - ties)
    )
    assert "teacher_pointwise_accuracy" in done["iter-1.label"].info
    assert (
        done["iter-1.train"].info["phase"] == "sft" and (run.path / "data" / "iter-1.sft.parquet").is_file()
    )
    assert done["iter-1.sample"].info["skipped"] == "sft phase"
    # iteration 2: DPO on meta-judged judgments of the iteration-1 model
    assert done["iter-2.label"].info["skipped"] == "dpo phase"
    metas = run.records("iter-2.meta_judge").read(judging.MetaRecord)
    b2 = done["iter-2.build"].info
    assert b2["meta_judged"] == len(metas) > 0
    assert b2["judge_pairs"] == sum(1 for i in range(len(metas)) if i % 3 in (0, 1))
    assert b2["meta_unparsable"] == len(metas) - b2["judge_pairs"]
    assert done["iter-2.train"].info["phase"] == "dpo"
    assert (run.path / "checkpoints" / "iter-2" / "selflab_checkpoint.json").is_file()
    # the meter: before, after SFT, after DPO, judge-side objectives with paired tests
    assert [m.iteration for m in metrics] == [0, 1, 2]
    m2 = metrics[2].metrics
    for name in (
        "judge_bench_accuracy",
        "pairwise_judge_accuracy",
        "position_consistency",
        "teacher_agreement",
        "heldout_pass_rate",
    ):
        assert name in m2, name
    assert m2["pairwise_judge_accuracy"].vs_previous is not None
    assert len(run.records("iter-0.evaluate").read_dicts()) > 0


def test_without_teacher_eval_the_jury_labels_training_items_only(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`teacher_eval: false` skips the jury pass over the held-out benchmark: the jury judges only
    the label stage's training items, and no teacher-agreement metric is recorded."""
    from selflab.judges.jury import Jury

    calls: list[int] = []
    real_judge = Jury.judge

    def counting_judge(self, items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return real_judge(self, items)

    monkeypatch.setattr(Jury, "judge", counting_judge)
    cfg = _tiny_config(tiny, iterations=1, phases=["sft"], labels="verified", teacher_eval=False)
    metrics = open_run(jd.JudgeDistillationLoop, tmp_path / "run", cfg, resume=False).run_loop()
    assert len(calls) == 1  # the label stage only
    assert all("teacher_agreement" not in m.metrics for m in metrics)
    assert "pairwise_judge_accuracy" in metrics[-1].metrics


def test_balance_pointwise_keeps_equal_high_and_low_scores() -> None:
    import random

    def rec(i: int, score: float | None, mode: str = "pointwise") -> jd.LabelRecord:
        return jd.LabelRecord(unit_id=str(i), mode=mode, prompt="q", response="r", jury_score=score)  # type: ignore[arg-type]

    labels = [rec(i, 0.0) for i in range(6)] + [
        rec(10, 5.0),
        rec(11, 4.0),
        rec(12, None),
        rec(13, None, "pairwise"),
    ]
    kept, dropped = jd.balance_pointwise(labels, (0.0, 5.0), random.Random(0))
    scores = [r.jury_score for r in kept if r.mode == "pointwise" and r.jury_score is not None]
    assert dropped == 4 and sorted(scores) == [0.0, 0.0, 4.0, 5.0]
    assert {r.unit_id for r in kept} >= {"12", "13"}  # unlabeled and pairwise records untouched
    again, _ = jd.balance_pointwise(labels, (0.0, 5.0), random.Random(0))
    assert [r.unit_id for r in again] == [r.unit_id for r in kept]  # seeded
