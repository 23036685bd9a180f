"""Clean evaluation, loop by loop: the items a loop trains on and the items it is evaluated on
share no entity (topic, country, item kind, expression) and no content sentence; the main job's
task draws are pinned (its published result stays reproducible); and the split has enough
held-out topics for a held-out CI to mean something."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from selflab.evalbench.items import load_items
from selflab.loops import judge_distillation as jd
from selflab.loops import self_refine, self_rewarding, spin
from selflab.loops import verified_sft as vs
from selflab.loops.base import open_run
from selflab.loops.benchmark import heldout_content, sentences
from selflab.loops.evaluation import heldout_sets
from selflab.loops.generated_data import GeneratedDataConfig, GeneratedDataLoop
from selflab.tasks import Task
from selflab.tasks.instructions import topic_pool
from selflab.tasks.splits import content_sentences, entities, side, split_tasks

ROOT = Path(__file__).resolve().parents[2]


def _disjoint(train: list[Task], held: list[Task]) -> None:
    assert train and held
    ents = lambda ts: {e for t in ts for e in entities(t)}  # noqa: E731
    sents = lambda ts: {s for t in ts for s in content_sentences(t)}  # noqa: E731
    assert not ents(train) & ents(held), sorted(ents(train) & ents(held))[:5]
    assert not sents(train) & sents(held), sorted(sents(train) & sents(held))[:5]


def _loop(cls: type, cfg: object, tmp_path: Path) -> object:
    return open_run(cls, tmp_path / "run", cfg, resume=False)  # type: ignore[arg-type]


def test_main_job_task_draws_are_pinned(tmp_path: Path) -> None:
    """The published main-job numbers come from exactly these draws; a change here changes them."""
    cfg = vs.VerifiedSFTConfig.model_validate(
        yaml.safe_load((ROOT / "configs/verified_sft.yaml").read_text())
    )
    loop = _loop(vs.VerifiedSFTLoop, cfg, tmp_path)

    def fp(ts: list[Task]) -> str:
        data = json.dumps([[t.id, t.prompt, t.reference, t.params] for t in ts])
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    assert fp(loop.train_tasks(1)) == "c88ff713bef23a41"  # type: ignore[attr-defined]
    assert fp(loop.train_tasks(2)) == "ef6f31c6e0140dd0"  # type: ignore[attr-defined]
    assert fp(loop.eval_tasks()) == "d1c8221d04c166b9"  # type: ignore[attr-defined]
    assert fp(loop.control_tasks()) == "9a6e47d4cb26b776"  # type: ignore[attr-defined]
    _disjoint(loop.train_tasks(1) + loop.train_tasks(2), loop.eval_tasks())  # type: ignore[attr-defined]


def test_enough_heldout_topics() -> None:
    held = [
        t
        for t in topic_pool("all")
        if side(
            Task(id="x", kind="instruction", prompt="", reference="", verifier="none", meta={"topic": t}), 0.3
        )
        == "heldout"
    ]
    assert len(topic_pool("all")) >= 40 and len(held) >= 12
    tasks = split_tasks("instructions", 60, 3, True, 0.3)
    assert len({t.meta["topic"] for t in tasks}) >= 10


@pytest.mark.parametrize("family", ["instructions", "arithmetic", "word_problems", "facts"])
def test_every_family_splits_by_entity(family: str) -> None:
    frac = 0.3 if family == "instructions" else 0.5
    _disjoint(split_tasks(family, 40, 1, False, frac), split_tasks(family, 30, 2, True, frac))


def test_verified_sft_all_topics(tmp_path: Path) -> None:
    cfg = vs.VerifiedSFTConfig(topics="all", train_tasks=40, eval_tasks=40)
    loop = _loop(vs.VerifiedSFTLoop, cfg, tmp_path)
    _disjoint(loop.train_tasks(1), loop.eval_tasks())  # type: ignore[attr-defined]


def test_self_rewarding_and_meta_rewarding(tmp_path: Path) -> None:
    cfg = self_rewarding.SelfRewardingConfig(seed_prompts=40)
    loop = _loop(self_rewarding.SelfRewardingLoop, cfg, tmp_path)
    sets = heldout_sets(loop.seed_for("eval"), loop.seed_for("control"), cfg)  # type: ignore[attr-defined]
    _disjoint(loop.seed_tasks(1) + loop.seed_tasks(2), sets["heldout"])  # type: ignore[attr-defined]


def test_spin(tmp_path: Path) -> None:
    cfg = spin.SPINConfig()
    loop = _loop(spin.SPINLoop, cfg, tmp_path)
    train, held = loop.references()  # type: ignore[attr-defined]
    assert len(held) == cfg.heldout_references
    sets = heldout_sets(loop.seed_for("eval"), loop.seed_for("control"), cfg)  # type: ignore[attr-defined]
    as_tasks = lambda rs: [  # noqa: E731
        Task(id=r.id, kind=r.kind, prompt=r.prompt, reference=r.reference, verifier="none") for r in rs
    ]
    # the references carry no meta, so compare by sentences and prompts
    tr, he = as_tasks(train), as_tasks(held) + sets["heldout"] + sets["control"]
    assert not {t.prompt for t in tr} & {t.prompt for t in he}
    assert not {s for t in tr for s in content_sentences(t)} & {s for t in he for s in content_sentences(t)}


def test_self_refine_and_generated_data(tmp_path: Path) -> None:
    cfg = self_refine.RefineConfig(families=["arithmetic", "word_problems", "instructions", "facts"])
    loop = _loop(self_refine.SelfRefineLoop, cfg, tmp_path / "a")
    _disjoint(loop.train_tasks(1), loop.eval_tasks())  # type: ignore[attr-defined]
    g = _loop(GeneratedDataLoop, GeneratedDataConfig(), tmp_path / "b")
    assert all(side(t, g.config.heldout_fraction) == "heldout" for t in g.eval_tasks())  # type: ignore[attr-defined]


def test_judge_distillation(tmp_path: Path) -> None:
    cfg = jd.JudgeDistillationConfig(train_items=24, bench_items=12)
    loop = _loop(jd.JudgeDistillationLoop, cfg, tmp_path)
    units, _ = loop.training_units(1)  # type: ignore[attr-defined]
    held, _ = loop.heldout()  # type: ignore[attr-defined]
    assert not {u.prompt for u in units} & {u.prompt for u in held}
    train_sents = {s for u in units for s in sentences(u.response)}
    # no held-out content (held-out topics' sentences, held-out tasks' texts) in training ...
    content = heldout_content(
        cfg.heldout_topic_fraction, [it.task for it in load_items() if it.id in {u.item_id for u in held}]
    )
    assert not train_sents & content, sorted(train_sents & content)[:3]
    # ... in particular none of the sentences of a correct held-out answer
    held_right = {s for u in held if u.correct for s in sentences(u.response)}
    assert not train_sents & held_right, sorted(train_sents & held_right)[:3]
    # and more held-out items no longer starve training (every item used to be banned from ~30 on)
    big = jd.JudgeDistillationConfig(train_items=24, bench_items=64)
    units64, _ = _loop(jd.JudgeDistillationLoop, big, tmp_path / "b").training_units(1)  # type: ignore[attr-defined]
    assert len({u.item_id for u in units64}) == 24
