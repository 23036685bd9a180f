"""Self-rewarding: instruction parsing, the pair rules with hand-counted drops, judge-benchmark
measures by hand, one full iteration on the tiny llama, and exact resume after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflab.loops import benchmark as bm
from selflab.loops import judging
from selflab.loops import self_rewarding as sr
from selflab.loops.base import get_loop, open_run
from selflab.loops.measures import Answer
from selflab.models.testing import tiny_llama
from selflab.runs import RunDir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _a(task: str, sample: int, text: str, score: float | None, finish: str = "stop") -> judging.JudgedAnswer:
    return judging.JudgedAnswer(
        task_id=task,
        prompt=f"prompt {task}",
        sample=sample,
        response=text,
        self_score=score,
        finish_reason=finish,
    )


def test_parse_instruction_rules() -> None:
    assert sr.parse_instruction(" Write a poem about the sea.\nmore") == ("Write a poem about the sea.", None)
    assert sr.parse_instruction('\n\n5. "Describe how rain forms."') == ("Describe how rain forms.", None)
    assert sr.parse_instruction("New task: List three fruits please") == ("List three fruits please", None)
    assert sr.parse_instruction("   \n ") == (None, "empty")
    assert sr.parse_instruction("Hi there") == (None, "too short")
    assert sr.parse_instruction(" ".join(["word"] * 61)) == (None, "too long")
    assert sr.parse_instruction("Explain {{ prompt }} to me now")[1] == "template markup"


def test_select_instructions_dedupes_and_counts() -> None:
    raws = [
        "Write a haiku about snow.",
        "write a HAIKU about snow!",
        "ok",
        "Explain how tides work.",
        "Name three birds now.",
    ]
    kept, rejected = sr.select_instructions(raws, existing=["Explain how tides work?"], wanted=1)
    assert [k for k, _ in kept] == ["Write a haiku about snow."]
    assert [r.reason for r in rejected] == ["duplicate", "too short", "duplicate", "surplus"]


def test_self_written_instructions_on_held_out_topics_are_refused(tmp_path: Path) -> None:
    """A model-written prompt about a held-out topic would be trained on (DPO) and then evaluated
    on that topic: refused and counted, as the generated-instructions loop does."""
    from selflab.models.types import Completion

    raws = ["Write a poem about volcanoes and lava.", "Describe how a kite flies in wind."]
    kept, rejected = sr.select_instructions(raws, existing=[], wanted=5, banned_topics=["volcanoes"])
    assert [k for k, _ in kept] == ["Describe how a kite flies in wind."]
    assert [r.reason for r in rejected] == ["names a held-out topic"]

    class Scripted:  # writes one instruction about a held-out topic, one about a training topic
        def generate(self, reqs):  # type: ignore[no-untyped-def]
            texts = ["Explain why whales sing songs.", "Describe how a kite flies in wind."]
            return [Completion(text=texts[i % 2]) for i in range(len(reqs))]

    cfg = sr.SelfRewardingConfig(seed_prompts=2, new_prompts=2)
    loop = sr.SelfRewardingLoop(cfg, RunDir.create(tmp_path / "run", config={}, seed=0))
    loop.load = lambda spec: Scripted()  # type: ignore[method-assign]
    from selflab.loops.base import StageContext

    ctx = StageContext(loop, 1, "prompts")
    loop.stage_prompts(ctx)
    used = [r.prompt for r in ctx.out.read(sr.PromptRecord) if r.source == "self"]
    assert used == ["Describe how a kite flies in wind."]
    assert ctx.info["rejected_names_a_held-out_topic"] == 2


def test_instruction_requests_are_seeded_few_shot() -> None:
    from selflab.models.types import SamplingParams

    seeds = [f"Write about topic {i}." for i in range(10)]
    s = SamplingParams(temperature=1.0, max_new_tokens=10)
    a = sr.instruction_requests(seeds, 3, 4, s, seed=7)
    b = sr.instruction_requests(seeds, 3, 4, s, seed=7)
    assert a == b and len(a) == 3
    assert a[0].assistant_prefix == "Task 5:" and a[0].messages[0].content.count("Task ") == 4
    assert [r.sampling.seed for r in a] == [7, 8, 9]


def test_pair_rules_hand_counted() -> None:
    answers = [
        # t1: clean pair (0.8 vs 0.2), one unparsable judgment among them
        _a("t1", 0, "good", 0.8),
        _a("t1", 1, "bad", 0.2),
        _a("t1", 2, "???", None),
        # t2: tie -> dropped
        _a("t2", 0, "x", 0.6),
        _a("t2", 1, "y", 0.6),
        # t3: only one parsable -> too few
        _a("t3", 0, "x", 0.4),
        _a("t3", 1, "y", None),
        # t4: best and worst have the same text -> duplicate
        _a("t4", 0, "same", 1.0),
        _a("t4", 1, " same ", 0.0),
        # t5: the highest answer was truncated; with drop_truncated the pair is 0.6 vs 0.0
        _a("t5", 0, "long", 1.0, finish="length"),
        _a("t5", 1, "mid", 0.6),
        _a("t5", 2, "low", 0.0),
    ]
    pairs, counts, trunc = sr.self_reward_pairs(answers)
    assert counts.groups == 5 and counts.pairs == 2
    assert (
        counts.dropped_ties == 1 and counts.dropped_too_few_scored == 1 and counts.dropped_duplicate_text == 1
    )
    assert counts.unparsable_responses == 2 and trunc == 0
    assert [(p.chosen, p.rejected) for p in pairs] == [("good", "bad"), ("long", "low")]
    pairs, counts, trunc = sr.self_reward_pairs(answers, drop_truncated=True)
    assert trunc == 1 and [(p.chosen, p.rejected) for p in pairs] == [("good", "bad"), ("mid", "low")]
    # a margin turns close calls into ties
    _, counts, _ = sr.self_reward_pairs(answers, min_margin=0.7)
    assert counts.pairs == 1 and counts.dropped_ties == 2


def test_bench_measures_by_hand() -> None:
    judged = [
        bm.BenchJudgment(unit_id="c", correct=True, score=0.8),  # right
        bm.BenchJudgment(unit_id="s", correct=False, score=0.6),  # wrong (says correct)
        bm.BenchJudgment(unit_id="o", correct=False, score=None),  # unparsable: missing
    ]
    pairs = [
        bm.BenchPair(id="p0", a="s", b="c", better="B"),  # 0.8 > 0.6 -> 1
        bm.BenchPair(id="p1", a="c", b="o", better="A"),  # missing
    ]
    acc, balanced, pair = bm.bench_measures(judged, pairs)
    assert acc.values == [True, False, None]
    assert balanced.values == [1.0, 0.0, None]  # one parsable item per class: weight 2 / (2 x 1)
    assert pair.values == [1.0, None]


def test_balanced_accuracy_sees_through_a_constant_judge() -> None:
    """A judge that calls every candidate wrong scores the base rate on plain accuracy (2/3 here)
    but 0.5 on balanced accuracy, whose per-item mean is the mean of the two classes' recalls."""
    judged = [bm.BenchJudgment(unit_id=str(i), correct=i % 3 == 0, score=0.0) for i in range(9)]
    acc, balanced = bm.bench_measures(judged, [])
    assert sum(bool(v) for v in acc.values) / 9 == pytest.approx(2 / 3)
    assert sum(float(v or 0) for v in balanced.values) / 9 == pytest.approx(0.5)
    good = [j.model_copy(update={"score": 1.0 if j.correct else 0.0}) for j in judged]
    assert sum(float(v or 0) for v in bm.bench_measures(good, [])[1].values) / 9 == pytest.approx(1.0)


def test_bench_slice_is_heldout_and_stable() -> None:
    units, pairs = bm.bench_slice(6)
    assert len({u.item_id for u in units}) == 6 and len(pairs) >= 10
    assert {u.id for u in units} >= {p.a for p in pairs} | {p.b for p in pairs}
    assert bm.bench_slice(6) == (units, pairs)
    other, _ = bm.bench_slice(6, offset=6)
    assert not {u.item_id for u in units} & {u.item_id for u in other}
    assert any(u.correct for u in units) and any(not u.correct for u in units)


def _config(tiny: Path, **kw: object) -> sr.SelfRewardingConfig:
    base = dict(
        model=f"hf:{tiny}",
        iterations=1,
        seed_prompts=3,
        new_prompts=2,
        samples_per_prompt=2,
        max_new_tokens=8,
        judge_samples=2,
        judge_reasoning=False,
        judge_max_new_tokens=3,
        prompt_max_new_tokens=8,
        eval_tasks=3,
        control_tasks=2,
        eval_max_new_tokens=8,
        bench_items=2,
        train={"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3},
        report=False,
    )
    base.update(kw)
    return sr.SelfRewardingConfig.model_validate(base)


def _force_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random tiny model never writes "Score: n", so nothing would parse: the judge stage is
    real (one generate call), then each judgment's score is replaced by a deterministic function of
    the answer so the later stages have pairs (and an unparsable one) to work with."""
    real = judging.judge_answers

    def judge_each(model, answers, *args, **kw):  # type: ignore[no-untyped-def]
        out = real(model, answers, *args, **kw)
        fixed = []
        for a in out:
            s = (
                None
                if a.sample == 0 and a.task_id.endswith("-1")
                else float((len(a.response) + a.sample) % 6)
            )
            scores = [s] * len(a.scores)
            fixed.append(a.model_copy(update={"scores": scores, "self_score": None if s is None else s / 5}))
        return fixed

    monkeypatch.setattr(judging, "judge_answers", judge_each)


def test_registry() -> None:
    assert get_loop("self-rewarding") is sr.SelfRewardingLoop


def test_one_full_iteration(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    _force_pairs(monkeypatch)
    loop = open_run(sr.SelfRewardingLoop, tmp_path / "run", _config(tiny, report=True), resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in sr.SelfRewardingLoop.stages]
    prompts = run.records("iter-1.prompts").read(sr.PromptRecord)
    used = [p for p in prompts if p.source in ("seed", "self")]
    assert done["iter-1.prompts"].info["prompts"] == len(used) >= 3
    assert done["iter-1.prompts"].info["new_prompt_requests"] == 4
    # every self-written request ends up kept or counted as rejected
    assert sum(1 for p in prompts if p.source != "seed") == 4
    gens = run.records("iter-1.generate").read(Answer)
    assert len(gens) == len(used) * 2
    judged = run.records("iter-1.judge").read(judging.JudgedAnswer)
    assert all(len(a.scores) == 2 and len(a.judgments) == 2 for a in judged)
    assert "Score:" in judged[0].judge_prompt
    b = done["iter-1.build"].info
    assert b["groups"] == len(used) and b["pairs"] == len(run.records("iter-1.build").read_dicts()) > 0
    assert (
        b["pairs"] + b["dropped_ties"] + b["dropped_too_few_scored"] + b["dropped_duplicate_text"]
        == b["groups"]
    )
    assert (run.path / "data" / "iter-1.dpo.parquet").is_file()
    assert done["iter-1.train"].info["steps"] == 1
    ckpt = run.path / "checkpoints" / "iter-1"
    assert (ckpt / "selflab_checkpoint.json").is_file()
    clear_cache()
    out = load_model(f"hf:{ckpt}").generate([GenerationRequest.chat("hello", max_new_tokens=4)])
    assert out[0].error is None
    clear_cache()
    assert [m.iteration for m in metrics] == [0, 1]
    m1 = metrics[1].metrics
    for name in (
        "heldout_pass_rate",
        "control_arithmetic_accuracy",
        "self_reward",
        "judge_bench_accuracy",
        "judge_bench_pair_accuracy",
        "response_tokens",
        "gap_self_minus_objective",
    ):
        assert name in m1, name
    assert m1["heldout_pass_rate"].estimate.n == 3 and m1["heldout_pass_rate"].vs_baseline is not None
    assert m1["judge_bench_accuracy"].missing + m1["judge_bench_accuracy"].estimate.n == 6
    assert metrics[1].info["pairs"] == b["pairs"]
    assert (run.path / "report.html").is_file()


def _snapshot(run_dir: Path) -> dict[str, object]:
    here = str(run_dir.resolve())
    snap: dict[str, object] = {}
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        text = f.read_text().replace(here, "RUN")
        if f.name.endswith(".train.jsonl"):
            snap[f.name] = [
                {k: v for k, v in json.loads(x).items() if k != "seconds"} for x in text.splitlines()
            ]
        else:
            snap[f.name] = text
    snap["metrics"] = [
        x
        for x in (run_dir / "metrics.jsonl").read_text().replace(here, "RUN").splitlines()
        if "run_finished" not in x
    ]
    snap["parquet"] = (run_dir / "data" / "iter-1.dpo.parquet").read_bytes()
    return snap


def test_resume_after_crash_gives_same_data(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _force_pairs(monkeypatch)
    cfg = _config(tiny, new_prompts=1, bench_items=1)
    open_run(sr.SelfRewardingLoop, tmp_path / "a", cfg, resume=False).run_loop()
    crashed = open_run(sr.SelfRewardingLoop, tmp_path / "b", cfg, resume=False)

    def crash(key: str) -> None:
        if key == "iter-1.judge":
            crashed.stage_log(1, "judge").append({"junk": True})
            raise KeyboardInterrupt("simulated kill")

    crashed.before_stage = crash
    with pytest.raises(KeyboardInterrupt):
        crashed.run_loop()
    assert RunDir.open(tmp_path / "b").is_complete("iter-1.generate")
    assert not RunDir.open(tmp_path / "b").is_complete("iter-1.judge")
    open_run(sr.SelfRewardingLoop, tmp_path / "b", None, resume=True).run_loop()
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")


@pytest.mark.integration
def test_tiny_budget_on_embedded_model(tmp_path: Path) -> None:
    """The real model: its direct-mode rubric judgments mostly parse, so real pairs form, and the
    counts add up; one DPO step produces a loadable checkpoint."""
    cfg = sr.SelfRewardingConfig.model_validate(
        dict(
            model="smollm2-135m",
            iterations=1,
            seed_prompts=4,
            new_prompts=1,
            samples_per_prompt=3,
            max_new_tokens=32,
            judge_samples=2,
            judge_reasoning=False,
            judge_max_new_tokens=4,
            eval_tasks=4,
            control_tasks=2,
            eval_max_new_tokens=32,
            bench_items=2,
            train={"lora": True, "max_steps": 1, "batch_size": 2},
            report=False,
        )
    )
    metrics = open_run(sr.SelfRewardingLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    j = done["iter-1.judge"].info
    assert j["unparsable_judgments"] < j["judgments"]  # the 135M model writes "Score: n" in direct mode
    b = done["iter-1.build"].info
    assert (
        b["pairs"] + b["dropped_ties"] + b["dropped_too_few_scored"] + b["dropped_duplicate_text"]
        == b["groups"]
    )
    assert (run.path / "checkpoints" / "iter-1" / "selflab_checkpoint.json").is_file()
    assert metrics[-1].metrics["judge_bench_accuracy"].estimate.n > 0
