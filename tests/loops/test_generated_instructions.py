"""Generated instructions: request parsing and every rejection reason, constraints attached by code,
no held-out topic in any training prompt, and one full iteration on the tiny llama."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.errors import SelflabError
from selflab.loops import generated_instructions as gi
from selflab.loops.base import get_loop, open_run
from selflab.models.adapters import is_model_folder
from selflab.models.testing import tiny_llama
from selflab.tasks.instructions import attach_constraint
from selflab.tasks.splits import entity_heldout


def test_parse_request_counts_every_rejection() -> None:
    seen: set[str] = set()
    banned = ["volcanoes", "the moon"]
    cases = [
        ("REQUEST: Explain how bridges carry heavy trucks.", "ok"),
        ("request - explain how bridges carry heavy trucks!", "duplicate"),
        ("REQUEST:", "empty"),
        ("REQUEST: Bridges.", "too short"),
        ("REQUEST: " + "word " * 41, "too long"),
        (gi.DEMONSTRATIONS[0], "copies a demonstration"),
        ("REQUEST: Describe a volcano erupting at night.", "names a held-out topic"),
        ("REQUEST: Write about moonlight on the sea.", "names a held-out topic"),
        ('**REQUEST:** "Tell me why owls hunt at night."\nSure, here it is', "ok"),
        ("Sure! Write about the best kites for windy days", "ok"),  # no prefix: first line
    ]
    got = [gi.parse_request(raw, banned, seen)[1] for raw, _ in cases]
    assert got == [want for _, want in cases]
    assert gi.parse_request('**REQUEST:** "Tell me why owls fly."', [], set())[0] == "Tell me why owls fly."


def test_attach_constraint_is_seeded_and_checked_by_code() -> None:
    a = attach_constraint("t", "Tell me about kites.", "include_keywords", "kites", 7)
    assert a == attach_constraint("t", "Tell me about kites.", "include_keywords", "kites", 7)
    assert a.prompt.startswith("Tell me about kites. Include the words")
    kws = a.params["constraints"][0]["keywords"]
    assert a.check(f"Kites fly: {kws[0]} and {kws[1]}.") and not a.check("Kites fly.")
    low = attach_constraint("t", "Tell me about kites.", "lowercase", "kites", 1)
    assert low.check("kites fly high.") and not low.check("Kites fly high.")


def test_unknown_constraint_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown or no constraint kinds"):
        gi.GeneratedInstructionsConfig(constraint_kinds=["rhymes"])


def test_full_iteration_on_tiny_model_keeps_training_off_heldout_topics(tmp_path: Path) -> None:
    tiny = tiny_llama(tmp_path / "tiny")
    cfg = gi.GeneratedInstructionsConfig(
        model=f"hf:{tiny}", requests=6, samples=2, max_new_tokens=8, propose_max_new_tokens=12,
        eval_tasks=4, control_tasks=2, eval_max_new_tokens=8, drop_truncated=False,
        train={"lora": True, "max_steps": 1, "batch_size": 2},  # type: ignore[arg-type]
    )  # fmt: skip
    assert get_loop("generated-instructions") is gi.GeneratedInstructionsLoop
    loop = open_run(gi.GeneratedInstructionsLoop, tmp_path / "run", cfg, resume=False)
    loop.run_loop()
    reqs = loop.read(1, "propose", gi.Request)
    assert len(reqs) == 6 and all(r.reason for r in reqs)
    f = cfg.heldout_topic_fraction
    assert all(not entity_heldout(r.topic, f) for r in reqs)
    assert all(entity_heldout(t.meta["topic"], f) for t in loop.eval_tasks())
    heldout_prompts = {t.prompt for t in loop.eval_tasks()}
    assert not {t.prompt for t in loop.train_tasks(1)} & heldout_prompts
    assert is_model_folder(loop.checkpoint_dir(1))
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert "heldout_pass_rate" in rows[1] and "control_arithmetic_accuracy" in rows[1]
    built = loop.stage_infos(1, ["examples", "steps"])
    assert built["examples"] > 0 and built["steps"] == 1


def test_config_file_loads() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    raw = yaml.safe_load((root / "configs/generated_instructions.yaml").read_text())
    try:
        gi.GeneratedInstructionsConfig.model_validate(raw)
    except SelflabError as exc:  # pragma: no cover
        pytest.fail(str(exc))
