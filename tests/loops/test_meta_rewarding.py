"""Meta-rewarding: length control, meta-candidate and judge-pair rules with hand-counted drops, and
one full iteration on the tiny llama (actor and judge pairs trained together)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.judges.meta import MetaJudge
from selflab.loops import judging
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
) -> judging.JudgedAnswer:
    scores = scores if scores is not None else [None if score is None else score * 5]
    return judging.JudgedAnswer(
        task_id=task,
        prompt=f"p-{task}",
        sample=sample,
        response=text,
        self_score=score,
        judge_prompt=f"judge {task}#{sample}",
        judgments=[f"Reason {k} for {task}.\nScore: {s}" for k, s in enumerate(scores)],
        scores=scores,
    )


def test_length_control_picks_shortest_in_the_top_band() -> None:
    """One pair rule for both loops: self-rewarding takes `length_control` too."""
    group = [
        _a("t", 0, "a very long winded top answer here", 1.0),
        _a("t", 1, "short good", 0.9),
        _a("t", 2, "mid answer with words", 0.5),
        _a("t", 3, "bad", 0.0),
    ]
    (p,), counts, _ = sr.self_reward_pairs(group, length_control=0.0)
    assert p.chosen == "a very long winded top answer here" and p.rejected == "bad"
    (p,), _, _ = sr.self_reward_pairs(group, length_control=0.2)  # band: score >= 0.8
    assert p.chosen == "short good" and p.chosen_score == 0.9 and p.rejected == "bad"
    (p,), _, _ = sr.self_reward_pairs(group, length_control=0.6)  # band >= 0.4: "short good" still shortest
    assert p.chosen == "short good"
    tie = [_a("u", 0, "x", 0.4), _a("u", 1, "y", 0.4), _a("v", 0, "z", None)]
    pairs, counts, _ = sr.self_reward_pairs(tie, length_control=0.5)
    assert pairs == [] and counts.dropped_ties == 1 and counts.dropped_too_few_scored == 1


def test_length_control_never_makes_an_invalid_pair() -> None:
    """The shorter chosen must still be a pair best-vs-worst would accept: a sampled judge can
    score one text twice (low and high), and the band's shortest may sit within `min_margin`."""
    same_text = [_a("t", 0, "ok", 0.2), _a("t", 1, "a much longer answer here", 1.0), _a("t", 2, "ok", 0.8)]
    (p,), _, _ = sr.self_reward_pairs(same_text, length_control=0.5)
    assert p.chosen != p.rejected and p.chosen == "a much longer answer here"
    near = [
        _a("u", 0, "bad answer", 0.4),
        _a("u", 1, "a much longer answer here", 1.0),
        _a("u", 2, "short", 0.7),
    ]
    (p,), _, _ = sr.self_reward_pairs(near, min_margin=0.4, length_control=0.5)
    assert p.chosen_score is not None and p.rejected_score is not None
    assert p.chosen_score - p.rejected_score > 0.4 and p.chosen == "a much longer answer here"


def test_strip_score_keeps_the_reasoning_only() -> None:
    assert judging.strip_score("Relevant and clear.\nScore: 4") == "Relevant and clear."
    assert judging.strip_score("It is good. Score: 3/5 overall") == "It is good.  overall"
    assert judging.strip_score("Score: 5") == ""


def test_meta_candidates_are_all_pairs_with_reasoning() -> None:
    bare = _a("t", 4, "r", 0.5, [1.0, 4.0])
    bare = bare.model_copy(update={"judgments": ["Score: 1", "Score: 4"]})  # nothing left to compare
    answers = [
        _a("t", 0, "r", 0.5, [1.0, 4.0, None]),  # one pair (0, 1)
        _a("t", 1, "r", 0.5, [3.0, 3.0]),  # same score, different reasoning: still compared
        _a("t", 2, "r", None, [None, 2.0]),  # too few parsable
        _a("t", 3, "r", 0.5, [2.0, 5.0, 0.0]),  # all three pairs
        bare,
    ]
    cands, counts = judging.meta_candidates(answers)
    assert [(a.sample, i, j) for a, i, j in cands] == [(0, 0, 1), (1, 0, 1), (3, 0, 1), (3, 0, 2), (3, 1, 2)]
    assert counts == {"too_few_parsable_judgments": 1, "no_reasoning_to_compare": 1, "meta_pairs": 5}


def test_judge_pairs_take_best_and_worst_win_rate() -> None:
    def rec(aid: str, i: int, j: int, v: str | None) -> judging.MetaRecord:
        return judging.MetaRecord(
            answer_id=aid,
            prompt="q",
            judge_prompt=f"grade {aid}",
            response="r",
            index_a=i,
            index_b=j,
            judgment_a=f"J{i}",
            judgment_b=f"J{j}",
            score_a=float(i),
            score_b=float(j),
            verdict=v,
        )

    records = [
        rec("x", 0, 1, "A"),  # x: J0 wins twice, J2 loses twice -> J0 over J2
        rec("x", 0, 2, "A"),
        rec("x", 1, 2, "A"),
        rec("y", 0, 1, "tie"),  # y: all tied -> dropped
        rec("z", 0, 1, None),  # z: unparsable only
    ]
    pairs, counts = judging.judge_pairs(records)
    assert counts == {
        "meta_judged": 5,
        "judge_pairs": 1,
        "meta_ties": 1,
        "meta_unparsable": 1,
        "judge_pair_ties": 1,
    }
    (p,) = pairs
    assert (p.chosen, p.rejected, p.prompt[0].content, p.chosen_score) == ("J0", "J2", "grade x", 0.0)


def test_registry() -> None:
    assert get_loop("meta-rewarding") is mr.MetaRewardingLoop


def test_one_full_iteration(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    real_judge = judging.judge_answers

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
                        "judgments": [
                            f"Reason {j} {a.response[:5]!r}.\nScore: {s:g}" for j, s in enumerate(scores)
                        ],
                        "self_score": sum(scores) / len(scores) / 5,
                    }
                )
            )
        return fixed

    real_meta = MetaJudge.compare_judgments

    def compare_judgments(self, items):  # type: ignore[no-untyped-def]
        out = real_meta(self, items)
        return [j.model_copy(update={"verdict": ["A", "B", "tie", None][i % 4]}) for i, j in enumerate(out)]

    monkeypatch.setattr(judging, "judge_answers", judge_each)
    monkeypatch.setattr(MetaJudge, "compare_judgments", compare_judgments)
    cfg = mr.MetaRewardingConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            iterations=1,
            seed_prompts=3,
            new_prompts=0,
            samples_per_prompt=2,
            max_new_tokens=8,
            judge_samples=2,
            judge_reasoning=False,
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
    assert len(metas) == info["meta_pairs"] == 6  # 6 answers x 1 pair of 2 judgments
    b = done["iter-1.build"].info
    pairs = run.records("iter-1.build").read(PreferencePair)
    assert len(pairs) == b["actor_pairs"] + b["judge_pairs"]
    assert b["judge_pairs"] == sum(1 for i in range(len(metas)) if i % 4 in (0, 1))
    assert b["meta_ties"] + b["meta_unparsable"] + b["judge_pairs"] == len(metas)
    judge_side = [p for p in pairs if p.source == "judge"]
    assert judge_side and all("Score:" in p.prompt[0].content and "Score:" in p.chosen for p in judge_side)
    ckpt = run.path / "checkpoints" / "iter-1"
    assert done["iter-1.train"].info["steps"] == 1 and (ckpt / "selflab_checkpoint.json").is_file()
    clear_cache()
    assert (
        load_model(f"hf:{ckpt}").generate([GenerationRequest.chat("hi", max_new_tokens=3)])[0].error is None
    )
    clear_cache()
    line = [m for m in run.metrics.read_dicts() if m.get("kind") == "iteration_metrics"][-1]
    assert {"judge_bench_accuracy", "self_reward", "heldout_pass_rate"} <= set(line["metrics"])
    assert line["info"]["judge_pairs"] == b["judge_pairs"]
