"""Every kind of run renders a report from runs/ data alone."""

from __future__ import annotations

import subprocess
import sys

from selflab.report import write_report
from selflab.report.replay import events
from selflab.results import game_rows
from selflab.runs import RunDir, read_rows
from selflab.runs.metrics import IterationMetrics, JudgeBenchMetrics, MetricSummary, ProbeMetrics
from selflab.stats import Estimate, PairedTest, proportion


def _play(tmp_path, agents=("scripted", "fuzz")):  # type: ignore[no-untyped-def]
    from selflab.envs.runner import play, schedule

    run = RunDir.create(tmp_path / "play", config={"game": "perudo-v0"}, seed=0, command="selflab play")
    res = play(schedule("perudo-v0", list(agents), 4, seed=0), run=run)
    return run, res.episodes


def test_games_report_has_ci_elo_and_refused_attempts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run, eps = _play(tmp_path)
    run.metrics.extend(game_rows("selflab play", eps))
    html = write_report(run).read_text()
    assert "win rate [95% Wilson CI]" in html and "Elo" in html and "Head to head" in html
    assert "refused" in html and "parse:" in html  # the fuzz agent's refused outputs and reasons
    row = read_rows(run)[0]
    assert row.kind == "games" and {a.agent for a in row.agents} == {"scripted", "fuzz"}


def test_replay_events_put_refused_attempts_before_their_turn() -> None:
    ep = {
        "agents": ["a", "b"],
        "steps": [
            {
                "turn": 1,
                "player": 1,
                "parsed_action": "zz",
                "raw_output": "zz!",
                "error": {"kind": "parse", "reason": "bad"},
            },
            {"turn": 1, "player": 1, "parsed_action": "x", "applied_action": "x", "defaulted": True},
        ],
        "transcript": [
            {"turn": 0, "sender": -1, "text": "start", "type": "system"},
            {"turn": 1, "sender": -1, "text": "Error budget spent", "type": "system", "recipients": [1]},
        ],
    }
    ev = events(ep)
    assert [e.kind for e in ev] == ["message", "refused", "defaulted", "message"]
    assert ev[1].raw == "zz!" and ev[1].reason == "parse: bad"
    assert [e.kind for e in events(ep, player=0)] == ["message"]


def test_loop_report_shows_verdict(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = RunDir.create(tmp_path / "loop", config={"loop": "demo"}, seed=0)
    est = proportion(6, 10)
    s = MetricSummary(name="acc", kind="objective", estimate=est,
                      vs_baseline=PairedTest(delta=Estimate(0.1, 0.0, 0.2, 10), p_value=0.3, test="mcnemar-exact"))  # fmt: skip
    run.metrics.append(IterationMetrics(loop="demo", iteration=0, model="m", metrics={"acc": s}))
    run.metrics.append(
        IterationMetrics(
            loop="demo",
            iteration=1,
            model="m1",
            metrics={"acc": s},
            verdict="hacking",
            verdict_reason="self-reward up, objective flat",
        )  # fmt: skip
    )
    html = write_report(run).read_text()
    assert "id='verdict'" in html and "hacking" in html
    assert html.index("hacking") < html.index("<h2>")


def test_bench_and_probe_reports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = RunDir.create(tmp_path / "bench", config={}, seed=0, command="selflab bench judges")
    e = proportion(3, 4).model_dump()
    judges = {
        "rubric": {
            "parse_failure_rate": e,
            "perturbations": {"position": {"pairwise": {"expect": "same", "flip_rate": e}}},
        }
    }
    majority = {"sizes": [1, 3], "seeds": [e, e], "personas": [e, e], "chance": 0.5}
    run.metrics.append(JudgeBenchMetrics(n_items=4, n_units=8, judges=judges, majority=majority))
    html = write_report(run).read_text()
    assert (
        "Flip rates per perturbation" in html and "position (pairwise)" in html and "Majority curve" in html
    )

    prun = RunDir.create(tmp_path / "probe", config={}, seed=0, command="selflab probe sweep")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.5, 0.9])
    fig.savefig(prun.path / "layer_curve.png")
    prun.metrics.append(
        ProbeMetrics(kind="probe_sweep", summary={"best": {"auc": e}}, plots=["layer_curve.png"])
    )
    html = write_report(prun).read_text()
    assert "Truth probes per layer" in html and "data:image/png;base64" in html and "best.auc" in html


def test_legacy_rows_and_unknown_kinds_do_not_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = RunDir.create(tmp_path / "old", config={}, seed=0)
    run.metrics.append({"stage": "play", "episodes": 3})
    run.metrics.append({"type": "run_finished", "wall_s": 1.0})
    run.metrics.append({"kind": "from_the_future", "x": 1})
    kinds = [r.kind for r in read_rows(run)]
    assert kinds == ["play_legacy", "run_finished", "from_the_future"]
    assert "from_the_future" in write_report(run).read_text()


def test_report_and_runs_do_not_import_producers() -> None:
    code = (
        "import sys, selflab.report, selflab.runs, selflab.view.app\n"
        "bad = [m for m in sys.modules if m.split('.')[1:2] and m.split('.')[1] in "
        "('loops', 'envs', 'evalbench', 'probes', 'judges', 'training')]\n"
        "print(bad); assert not bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
