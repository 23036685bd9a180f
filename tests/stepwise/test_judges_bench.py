"""Step judges, step-level metrics and the benchmark run: an oracle judge scores perfectly, a
judge that never answers gives no predictions (missing, never a label), and the run directory
resumes without duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selflab.models.types import Completion, GenerationRequest
from selflab.stepwise import get_family
from selflab.stepwise.bench import StepBenchConfig, injected_items, judge_items, run_step_bench
from selflab.stepwise.judges import (
    LikelihoodStepJudge,
    LLMStepJudge,
    StepJudgment,
    StepScore,
    parse_verdict,
    step_prompt,
)
from selflab.stepwise.metrics import judge_metrics, proportion
from selflab.stepwise.types import BenchSolution


def _items() -> list[BenchSolution]:
    out = []
    for fam in ("arithmetic", "blocks", "dates", "detective"):
        out += injected_items(fam, 8, seed=0, correct_fraction=0.3)
    return out


class OracleModel:
    """Answers every step question with the code label (or garbage when `garbage`)."""

    name = "oracle"

    def __init__(self, items: list[BenchSolution], garbage: bool = False) -> None:
        self.garbage = garbage
        self.truth: dict[str, bool] = {}
        for it in items:
            fam = get_family(it.problem.family)
            steps = [s.text for s in it.labelled.steps]
            for k, lab in enumerate(it.labelled.steps):
                self.truth[step_prompt(fam, it.problem, steps, k)] = bool(lab.ok)

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        out = []
        for r in requests:
            assert r.assistant_prefix == "Verdict:"
            ok = self.truth[r.messages[-1].content]
            out.append(Completion(text="maybe?" if self.garbage else (" correct" if ok else " incorrect")))
        return out

    def score(self, prompt, continuations):  # type: ignore[no-untyped-def]
        ok = self.truth[prompt[-1].content]
        return [-0.1, -3.0] if ok else [-3.0, -0.1]


def test_parse_verdict_is_strict() -> None:
    assert parse_verdict(" correct") == ("correct", None)
    assert parse_verdict(" **Incorrect**.") == ("incorrect", None)
    # a line that reads both ways is no verdict
    for bad in ("", " maybe", " not correct", " yes", " correct or incorrect", " Correct. No, incorrect"):
        v, err = parse_verdict(bad)
        assert v is None and err


def test_oracle_judges_score_perfectly() -> None:
    items = _items()
    assert any(it.labelled.first_error >= 0 for it in items) and any(
        it.labelled.first_error < 0 for it in items
    )
    for judge in (LLMStepJudge(OracleModel(items)), LikelihoodStepJudge(OracleModel(items))):  # type: ignore[arg-type]
        js = judge_items(judge, items)
        m = judge_metrics(items, js)
        assert m["first_error_acc_erroneous"].value == 1.0
        assert m["first_error_acc_correct"].value == 1.0
        assert m["first_error_f1"].value == 1.0
        assert m["step_f1_wrong"].value == 1.0
        assert m["step_parse_failure_rate"].value == 0.0
        lo, hi = m["first_error_acc_erroneous"].lo, m["first_error_acc_erroneous"].hi
        assert lo is not None and hi is not None and lo < 1.0 <= hi
    assert (
        judge_metrics(items, judge_items(LikelihoodStepJudge(OracleModel(items)), items))["step_auroc"].value
        == 1.0
    )  # type: ignore[arg-type]


def test_a_judge_that_never_answers_gives_no_labels() -> None:
    items = _items()
    js = judge_items(LLMStepJudge(OracleModel(items, garbage=True)), items)  # type: ignore[arg-type]
    assert all(j.first_error() is None for j in js)
    m = judge_metrics(items, js)
    assert m["first_error_acc_all"].value is None and m["first_error_acc_all"].missing == len(items)
    assert m["step_f1_wrong"].value is None
    assert m["step_parse_failure_rate"].value == 1.0


def test_first_error_prediction_rules() -> None:
    j = StepJudgment(
        item_id="x", judge="t", steps=[StepScore(index=0, p_correct=0.9), StepScore(index=1, p_correct=0.2)]
    )
    assert j.first_error() == 1 and j.min_p() == 0.2
    gap = StepJudgment(
        item_id="x", judge="t", steps=[StepScore(index=0, parse_error="?"), StepScore(index=1, p_correct=0.1)]
    )
    assert gap.first_error() is None and gap.min_p() is None
    assert StepJudgment(item_id="x", judge="t", steps=[StepScore(index=0, p_correct=0.7)]).first_error() == -1


def test_proportion_has_a_wilson_interval() -> None:
    m = proportion([True, True, False, None])
    assert m.value == pytest.approx(2 / 3) and m.n == 3 and m.missing == 1
    assert 0 < m.lo < m.value < m.hi < 1  # type: ignore[operator]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selflab.models.testing import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_bench_run_dir_and_resume(tiny: Path, tmp_path: Path) -> None:
    cfg = StepBenchConfig(
        model=f"hf:{tiny}", injected_per_family=3, model_written_per_family=2, max_new_tokens=16
    )
    s1 = run_step_bench(cfg, tmp_path / "b")
    run = tmp_path / "b"
    assert (run / "run.yaml").is_file() and (run / "summary.json").is_file()
    n_items = len((run / "records" / "items.jsonl").read_text().splitlines())
    n_llm = sum(len(f.read_text().splitlines()) for f in (run / "records").glob("judge-llm-*.jsonl"))
    assert n_items == s1["items"] == n_llm >= 9
    s2 = run_step_bench(cfg, tmp_path / "b", resume=True)
    assert len((run / "records" / "items.jsonl").read_text().splitlines()) == n_items
    assert s1 == s2
    for kind in ("llm", "likelihood"):
        assert "first_error_f1" in s1["judges"][kind]["all"]


def test_cli_bench_steps(tiny: Path, tmp_path: Path) -> None:
    from selflab.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "steps",
            "--model",
            f"hf:{tiny}",
            "--out",
            str(out),
            "--injected",
            "2",
            "--model-written",
            "0",
            "--judges",
            "likelihood",
            "--families",
            "blocks",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == 2 and list(summary["judges"]) == ["likelihood"]


class ScriptedModel:
    """Returns the given texts in order, one per request."""

    name = "scripted"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        return [Completion(text=self.texts[i % len(self.texts)]) for i in range(len(requests))]


def test_model_solutions_kept_only_when_the_first_error_is_known() -> None:
    from selflab.models.types import SamplingParams
    from selflab.stepwise.bench import model_items

    texts = ["", "I think so.\n5 * 5 = 25\nAnswer: 1", "1 + 1 = 3\nno idea\nAnswer: 3", "Answer: 4"]
    kept, dropped = model_items(ScriptedModel(texts), "arithmetic", 4, 0, SamplingParams())  # type: ignore[arg-type]
    assert [d.error_kind for d in dropped] == ["empty", "unparsable_before_first_error", "no_steps"]
    assert len(kept) == 1 and kept[0].labelled.first_error == 0 and kept[0].labelled.unparsable == 1
