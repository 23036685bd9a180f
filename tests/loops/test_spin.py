"""SPIN: the shipped reference set (size, verified, disjoint from held-out evaluation), pair rules
with hand-counted drops, bad user data, and one full iteration on the tiny llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflab.errors import ConfigError
from selflab.loops import spin
from selflab.loops.base import get_loop, open_run
from selflab.loops.measures import Answer
from selflab.models.testing import tiny_llama
from selflab.models.types import user
from selflab.runs import RunDir
from selflab.training import PreferencePair


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_task_references_fill_the_request_from_their_side() -> None:
    train = spin.task_references(48, seed=1, heldout=False)
    held = spin.task_references(32, seed=2, heldout=True)
    assert len(train) == 48 and len(held) == 32  # no silent cap
    assert len({r.prompt for r in train}) == 48
    assert {r.kind for r in held} == {"instruction", "arithmetic", "word_problem", "fact"}
    assert not {r.prompt for r in train} & {r.prompt for r in held}


@pytest.mark.parametrize("fraction", [0.5, 0.7])
def test_training_references_avoid_the_evaluated_topics_at_any_fraction(
    tmp_path: Path, fraction: float
) -> None:
    """The held-out panel splits topics with `heldout_topic_fraction`; the training references
    must use the same split (a fixed 0.3 trained on e.g. 'football', held out at 0.5)."""
    from selflab.loops.benchmark import heldout_content, sentences

    cfg = spin.SPINConfig(heldout_topic_fraction=fraction)
    loop = spin.SPINLoop(cfg, RunDir.create(tmp_path / "run", config={}, seed=0))
    train, held = loop.references()
    banned = heldout_content(fraction)
    leaked = [r.prompt for r in train if r.kind == "instruction" and sentences(r.reference) & banned]
    assert leaked == []
    assert all(sentences(r.reference) & banned for r in held if r.kind == "instruction")
    # nor on an entity (person, item kind, expression) of the judge benchmark held out at `fraction`
    from selflab.tasks import Task
    from selflab.tasks.splits import side

    for r in train:
        if r.kind in ("arithmetic", "word_problem"):
            task = Task(id=r.id, kind=r.kind, prompt=r.prompt, reference=r.reference, verifier="none")
            assert side(task, fraction) == "train", r.prompt


def test_user_data_split_by_group() -> None:
    rows = [
        spin.ReferenceExample(id=f"r{i}", prompt=f"q{i}", reference="a", group=f"g{i % 5}") for i in range(40)
    ]
    train, held = spin.split_references(rows, 0.4)
    assert train and held and not {r.group for r in train} & {r.group for r in held}


def test_pair_rules_and_counts() -> None:
    refs = [spin.ReferenceExample(id=f"r{i}", prompt=f"q{i}", reference=f"ref {i}") for i in range(4)]
    own = [
        Answer(task_id="r0", prompt="q0", response="my answer"),
        Answer(task_id="r1", prompt="q1", response=" ref 1 "),
        Answer(task_id="r2", prompt="q2", response="  "),
        Answer(task_id="r3", prompt="q3", response="", error="boom"),
    ]
    pairs, drops = spin.spin_pairs(refs, own)
    assert [(p.chosen, p.rejected) for p in pairs] == [("ref 0", "my answer")]
    assert [d.reason for d in drops] == ["identical_to_reference", "empty", "generation_error"]


def test_bad_user_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        spin.load_references(str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "reference": "a"}\n{"prompt": 3}\n')
    with pytest.raises(ConfigError, match=":2 is not a valid"):
        spin.load_references(str(bad))
    ok = tmp_path / "ok.jsonl"
    ok.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(5)))
    assert [r.reference for r in spin.load_references(str(ok))] == [f"a{i}" for i in range(5)]


def test_reference_logprob_on_tiny(tiny: Path) -> None:
    from selflab.models import clear_cache, load_model

    model = load_model(f"hf:{tiny}")
    refs = [spin.ReferenceExample(id="a", prompt="Say hi.", reference="Hi there, friend.")]
    m = spin.reference_logprob(model, refs)
    n = len(model.tokenizer("Hi there, friend.", add_special_tokens=False)["input_ids"])
    total = model.score([user("Say hi.")], ["Hi there, friend."])[0]
    assert m.values[0] == pytest.approx(total / n) and m.values[0] < 0
    clear_cache()


def test_registry() -> None:
    assert get_loop("spin") is spin.SPINLoop


def test_one_full_iteration(tiny: Path, tmp_path: Path) -> None:
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    cfg = spin.SPINConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            iterations=1,
            train_prompts=4,
            heldout_references=3,
            max_new_tokens=8,
            temperature=2.0,  # a random tiny model greedily writes only newlines (dropped as empty)
            top_p=1.0,
            judge_max_new_tokens=3,
            eval_tasks=3,
            control_tasks=2,
            eval_max_new_tokens=8,
            bench_items=1,
            train={"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3},
            report=False,
        )
    )
    loop = open_run(spin.SPINLoop, tmp_path / "run", cfg, resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in spin.SPINLoop.stages]
    assert len(run.records("iter-1.generate").read(Answer)) == 4
    pairs = run.records("iter-1.build").read(PreferencePair)
    info = done["iter-1.build"].info
    assert len(pairs) == info["pairs"] > 0
    assert info["pairs"] + info["dropped_empty"] + info["dropped_generation_error"] == 4
    assert info["dropped_identical_to_reference"] == 0  # a random model never copies a reference
    refs, held = loop.references()
    assert {p.chosen for p in pairs} <= {r.reference for r in refs}
    ckpt = run.path / "checkpoints" / "iter-1"
    assert done["iter-1.train"].info["steps"] == 1 and (ckpt / "selflab_checkpoint.json").is_file()
    clear_cache()
    assert (
        load_model(f"hf:{ckpt}").generate([GenerationRequest.chat("hi", max_new_tokens=3)])[0].error is None
    )
    clear_cache()
    m = metrics[1].metrics
    assert (
        m["heldout_reference_logprob"].estimate.n == 3
        and m["heldout_reference_logprob"].vs_baseline is not None
    )
    assert {"heldout_pass_rate", "self_reward", "response_tokens", "judge_bench_accuracy"} <= set(m)
    # the trained model's held-out reference likelihood moved (the DPO step changed the weights)
    assert (
        metrics[1].metrics["heldout_reference_logprob"].estimate.mean
        != metrics[0].metrics["heldout_reference_logprob"].estimate.mean
    )


def test_sft_control_arm_trains_on_the_references(tiny: Path, tmp_path: Path) -> None:
    cfg = spin.SPINConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            arm="sft",
            iterations=1,
            train_prompts=4,
            heldout_references=2,
            judge_max_new_tokens=2,
            eval_tasks=2,
            control_tasks=0,
            eval_max_new_tokens=8,
            bench_items=0,
            train={"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3},
            report=False,
        )
    )
    loop = open_run(spin.SPINLoop, tmp_path / "run", cfg, resume=False)
    metrics = loop.run_loop()
    done = RunDir.open(tmp_path / "run").completed_stages()
    assert done["iter-1.generate"].info["skipped"].startswith("sft control arm")
    assert done["iter-1.build"].info["examples"] == 4 and done["iter-1.train"].info["steps"] == 1
    refs, _ = loop.references()
    built = RunDir.open(tmp_path / "run").records("iter-1.build").read_dicts()
    assert [b["response"] for b in built] == [r.reference for r in refs]
    assert metrics[1].info["arm"] == "sft"
