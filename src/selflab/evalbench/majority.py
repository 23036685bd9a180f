"""Is a majority vote a valid ground truth? Jury-majority accuracy against verified truth as the
jury grows, with and without personas.

The research plan proposes a diverse majority vote as ground truth where none exists. Here truth
exists (code verifiers), so we can measure how far the majority is from it. `majority_curve` is
pure: it takes each juror's binary vote per item and averages the majority's accuracy over many
seeded random juries of each size (with a bootstrap CI over items). `majority_study` gathers
those votes from seeded and persona jurors on the judge benchmark's candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selflab.evalbench.config import BenchConfig
from selflab.evalbench.items import BenchItem, Candidate
from selflab.evalbench.judging import judge_options
from selflab.evalbench.metrics import Metric, bootstrap, chance_accuracy, repetition_stability
from selflab.judges.types import Judgment, PointwiseItem
from selflab.models.types import LanguageModel


def majority_vote(votes: np.ndarray) -> np.ndarray:
    """Column-wise majority of a (jurors, items) array of 1/0/NaN votes; NaN = abstained. Items with
    no votes or an exact tie get 0.5 (counted as half right)."""
    v = np.asarray(votes, dtype=float)
    yes = np.nansum(v == 1, axis=0)
    no = np.nansum(v == 0, axis=0)
    out = np.where(yes > no, 1.0, np.where(no > yes, 0.0, 0.5))
    return out


def majority_accuracy(votes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-item accuracy of the majority (1, 0, or 0.5 for a tie)."""
    maj = majority_vote(votes)
    t = np.asarray(truth, dtype=float)
    return np.where(maj == 0.5, 0.5, (maj == t).astype(float))


def majority_curve(
    votes: np.ndarray,
    truth: Sequence[int],
    sizes: Sequence[int] = (1, 3, 5, 9),
    n_juries: int = 50,
    seed: int = 0,
) -> list[Metric]:
    """For each size k: mean over `n_juries` random k-subsets of jurors of the majority's accuracy,
    as a Metric with a bootstrap CI over items (per-item accuracies averaged over the juries)."""
    v = np.asarray(votes, dtype=float)
    n_jurors = v.shape[0]
    rng = np.random.default_rng(seed)
    t = np.asarray(truth, dtype=float)
    out = []
    for k in sizes:
        if k > n_jurors:
            out.append(Metric(None, None, None, 0))
            continue
        draws = 1 if k == n_jurors else n_juries
        per_item = np.zeros(v.shape[1])
        for _ in range(draws):
            members = rng.choice(n_jurors, size=k, replace=False)
            per_item += majority_accuracy(v[members], t)
        per_item /= draws
        out.append(bootstrap(lambda x: float(np.mean(x)) if len(x) else None, per_item, seed=seed))
    return out


def plot_curves(
    curves: dict[str, list[Metric]], sizes: Sequence[int], chance: float | None, path: str
) -> str:
    """Save accuracy-vs-jury-size lines with CI bands as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, ms in curves.items():
        xs = [s for s, m in zip(sizes, ms, strict=True) if m.value is not None]
        ys = [m.value for m in ms if m.value is not None]
        lo = [m.ci_low if m.ci_low is not None else m.value for m in ms if m.value is not None]
        hi = [m.ci_high if m.ci_high is not None else m.value for m in ms if m.value is not None]
        ax.plot(xs, ys, marker="o", label=label)
        ax.fill_between(xs, lo, hi, alpha=0.2)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="majority-class baseline")
    ax.set_xlabel("jury size (judges)")
    ax.set_ylabel("accuracy of the majority vs verified truth")
    ax.set_xticks(list(sizes))
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Is a majority vote a valid ground truth?", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def majority_study(model: LanguageModel, items: list[BenchItem], config: BenchConfig, out_dir: Path) -> dict:
    """Binary correct/wrong votes of 9 sampled jurors (seeds) and 9 persona jurors on the candidates
    of `majority_items` items, all in one batched generate call; accuracy of the majority vs truth."""
    from selflab.judges.factory import build_judge
    from selflab.judges.jury import run_members
    from selflab.judges.personas import pick_personas

    n = max(config.jury_sizes)
    cands: list[tuple[BenchItem, Candidate]] = [
        (it, c) for it in items[: config.majority_items] for c in it.candidates
    ]
    opts = judge_options(config)
    seeds = [build_judge("rubric", model, temperature=0.7, seed=config.seed + i, **opts) for i in range(n)]
    personas = pick_personas(n, seed=config.seed)
    persona_judges = [
        build_judge("rubric", model, temperature=0.7, seed=config.seed + i, persona=p, **opts)
        for i, p in enumerate(personas)
    ]
    pitems = [PointwiseItem(prompt=it.task.prompt, response=c.response, id=c.id) for it, c in cands]
    results = run_members(seeds + persona_judges, pitems, "judge")
    truth = np.array([int(c.correct) for _, c in cands])

    def votes(js: list[list[Judgment]], scale_mid: float) -> np.ndarray:
        return np.array(
            [[np.nan if j.score is None else float(j.score > scale_mid) for j in row] for row in js]
        )

    lo, hi = seeds[0].scale
    mid = (lo + hi) / 2
    v_seeds, v_pers = votes(results[:n], mid), votes(results[n:], mid)
    sizes = [s for s in config.jury_sizes if s <= n]
    curves = {
        "seeds (T=0.7)": majority_curve(v_seeds, truth, sizes, seed=config.seed),
        "personas (T=0.7)": majority_curve(v_pers, truth, sizes, seed=config.seed),
    }
    chance = chance_accuracy(truth.tolist())
    plot = plot_curves(curves, sizes, chance, str(out_dir / "majority.png"))
    samples = [[None if np.isnan(x) else x for x in col] for col in v_seeds.T]
    return {
        "sizes": sizes,
        "n_candidates": len(cands),
        "chance": chance,
        "seeds": [m.to_dict() for m in curves["seeds (T=0.7)"]],
        "personas": [m.to_dict() for m in curves["personas (T=0.7)"]],
        "personas_used": personas,
        "parse_failure_rate": float(np.mean(np.isnan(np.concatenate([v_seeds, v_pers]))))
        if len(cands)
        else None,
        "repetition_stability": repetition_stability(samples, seed=config.seed).to_dict(),
        "plot": Path(plot).name,
        "_records": [
            {
                "juror": (seeds + persona_judges)[i].name,
                "persona": (personas[i - n] if i >= n else None),
                "unit": cands[k][1].id,
                "score": j.score,
                "parse_error": j.parse_error,
                "raw": j.raw,
            }
            for i, row in enumerate(results)
            for k, j in enumerate(row)
        ],
    }
