"""Meta-rewarding: length control, meta-candidate and judge-pair rules with hand-counted drops, and
one full iteration on the tiny llama (actor and judge pairs trained together)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.judges.meta import MetaJudge
from selflab.loops import meta_rewarding as mr
from selflab.loops import self_rewarding as sr
from selflab.loops.base import get_loop, open_run
from selflab.models.testing import tiny_llama
from selflab.runs import RunDir
from selflab.training import PreferencePair


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _a(
    task: str, sample: int, text: str, score: float | None, scores: list[float | None] | None = None
) -> sr.JudgedAnswer:
    scores = scores if scores is not None else [None if score is None else score * 5]
    return sr.JudgedAnswer(
        task_id=task,
        prompt=f"p-{task}",
        sample=sample,
        response=text,
        self_score=score,
        judge_prompt=f"judge {task}#{sample}",
        judgments=[f"Score: {s}" for s in scores],
        scores=scores,
    )


def test_length_control_picks_shortest_in_the_top_band() -> None:
    group = [
        _a("t", 0, "a very long winded top answer here", 1.0),
        _a("t", 1, "short good", 0.9),
        _a("t", 2, "mid answer with words", 0.5),
        _a("t", 3, "bad", 0.0),
    ]
    (p,), counts = mr.length_controlled_pairs(group, rho=0.0)
    assert p.chosen == "a very long winded top answer here" and p.rejected == "bad"
    (p,), _ = mr.length_controlled_pairs(group, rho=0.2)  # band: score >= 0.8
    assert p.chosen == "short good" and p.chosen_score == 0.9 and p.rejected == "bad"
    (p,), _ = mr.length_controlled_pairs(group, rho=0.6)  # band >= 0.4: "short good" still shortest
    assert p.chosen == "short good"
    tie = [_a("u", 0, "x", 0.4), _a("u", 1, "y", 0.4), _a("v", 0, "z", None)]
    pairs, counts = mr.length_controlled_pairs(tie, rho=0.5)
    assert pairs == [] and counts.dropped_ties == 1 and counts.dropped_too_few_scored == 1


def test_meta_candidates_counts() -> None:
    answers = [
        _a("t", 0, "r", 0.5, [1.0, 4.0, None]),  # candidate: hi=1, lo=0
        _a("t", 1, "r", 0.5, [3.0, 3.0]),  # unanimous
        _a("t", 2, "r", None, [None, 2.0]),  # too few parsable
        _a("t", 3, "r", 0.5, [2.0, 5.0, 0.0]),  # hi=1, lo=2
    ]
    cands, counts = mr.meta_candidates(answers)
    assert [(a.sample, hi, lo) for a, hi, lo in cands] == [(0, 1, 0), (3, 1, 2)]
    assert counts == {"too_few_parsable_judgments": 1, "unanimous_judgments": 1}


def test_judge_pairs_rules() -> None:
    def rec(v: str | None) -> mr.MetaRecord:
        return mr.MetaRecord(
            answer_id=f"x{v}",
            prompt="q",
            judge_prompt="grade it",
            response="r",
            judgment_a="Score: 4",
            judgment_b="Score: 1",
            score_a=4,
            score_b=1,
            verdict=v,
        )

    pairs, counts = mr.judge_pairs([rec("A"), rec("B"), rec("tie"), rec(None)])
    assert counts == {"meta_judged": 4, "judge_pairs": 2, "meta_ties": 1, "meta_unparsable": 1}
    assert [(p.chosen, p.rejected) for p in pairs] == [("Score: 4", "Score: 1"), ("Score: 1", "Score: 4")]
    assert pairs[0].prompt[0].content == "grade it" and pairs[1].chosen_score == 1


def test_registry() -> None:
    assert get_loop("meta-rewarding") is mr.MetaRewardingLoop


def test_one_full_iteration(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    real_judge = sr.judge_each

    def judge_each(model, answers, samples, *args, **kw):  # type: ignore[no-untyped-def]
        """Real judge call; then scores made deterministic and varied (a tiny random model never
        writes a score), so judgments of a response disagree and meta-judging has work."""
        out = real_judge(model, answers, samples, *args, **kw)
        fixed = []
        for a in out:
            scores = [float((len(a.response) + a.sample + j) % 6) for j in range(len(a.scores))]
            fixed.append(
                a.model_copy(
                    update={
                        "scores": scores,
                        "judgments": [f"Score: {s:g}" for s in scores],
                        "self_score": sum(scores) / len(scores) / 5,
                    }
                )
            )
        return fixed

    real_meta = MetaJudge.compare_judgments

    def compare_judgments(self, items):  # type: ignore[no-untyped-def]
        out = real_meta(self, items)
        return [j.model_copy(update={"verdict": ["A", "B", "tie", None][i % 4]}) for i, j in enumerate(out)]

    monkeypatch.setattr(sr, "judge_each", judge_each)
    monkeypatch.setattr(MetaJudge, "compare_judgments", compare_judgments)
    cfg = mr.MetaRewardingConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            iterations=1,
            seed_prompts=3,
            samples_per_prompt=2,
            max_new_tokens=8,
            judge_samples=2,
            judge_max_new_tokens=3,
            eval_tasks=3,
            control_tasks=0,
            eval_max_new_tokens=8,
            bench_items=1,
            length_control=0.3,
            train={"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3},
            report=False,
        )
    )
    open_run(mr.MetaRewardingLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in mr.MetaRewardingLoop.stages]
    metas = run.records("iter-1.meta_judge").read(mr.MetaRecord)
    info = done["iter-1.meta_judge"].info
    assert len(metas) == info["meta_candidates"] > 0
    assert info["meta_candidates"] + info["unanimous_judgments"] + info["too_few_parsable_judgments"] == 6
    assert all(m.score_a > m.score_b for m in metas)
    b = done["iter-1.build"].info
    pairs = run.records("iter-1.build").read(PreferencePair)
    assert len(pairs) == b["actor_pairs"] + b["judge_pairs"]
    assert b["judge_pairs"] == sum(1 for i in range(len(metas)) if i % 4 in (0, 1))
    assert b["meta_ties"] + b["meta_unparsable"] + b["judge_pairs"] == len(metas)
    judge_side = [p for p in pairs if p.source == "judge"]
    assert judge_side and all("Score:" in p.prompt[0].content for p in judge_side)
    ckpt = run.path / "checkpoints" / "iter-1"
    assert done["iter-1.train"].info["steps"] == 1 and (ckpt / "model.safetensors").is_file()
    clear_cache()
    assert (
        load_model(f"hf:{ckpt}").generate([GenerationRequest.chat("hi", max_new_tokens=3)])[0].error is None
    )
    clear_cache()
    line = [m for m in run.metrics.read_dicts() if m.get("kind") == "iteration_metrics"][-1]
    assert {"judge_bench_accuracy", "self_reward", "heldout_pass_rate"} <= set(line["metrics"])
    assert line["info"]["judge_pairs"] == b["judge_pairs"]
