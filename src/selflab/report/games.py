"""The games report (`play`, `tournament`, `baselines`): win rates with Wilson CIs, Elo and
TrueSkill, head-to-head tests, and replays of the recorded episodes with every refused attempt."""

from __future__ import annotations

from typing import Any

from selflab.report.common import Raw, esc, fmt_estimate, png, pyplot, table
from selflab.report.replay import episode_html
from selflab.runs import RunDir
from selflab.runs.metrics import GameMetrics

MAX_REPLAYS = 30


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _leaderboard(row: GameMetrics) -> str:
    rows = []
    for a in row.agents:
        ts = "-" if a.trueskill_mu is None else f"{a.trueskill_mu:.1f} ± {a.trueskill_sigma or 0:.1f}"
        rows.append(
            [a.agent, a.seats, a.wins, fmt_estimate(a.win_rate.model_dump(), 3), _num(a.elo, ".0f"), ts,
             f"{a.mean_reward:.3f}", f"{a.invalid_rate:.3f}", a.defaults, f"{a.mean_turns:.1f}"]
        )  # fmt: skip
    headers = ["agent", "seats", "wins", "win rate [95% Wilson CI]", "Elo", "TrueSkill μ ± σ", "mean reward",
               "invalid rate", "defaults", "mean turns"]  # fmt: skip
    return table(headers, rows)


def _pairs(row: GameMetrics) -> str:
    if not row.pairs:
        return ""
    rows = [
        [f"{p.a} vs {p.b}", p.episodes, f"{p.a_wins} - {p.b_wins}", _num(p.p_value, ".3g")] for p in row.pairs
    ]
    return "<h3>Head to head (exact two-sided binomial test on decided games)</h3>" + table(
        ["pair", "episodes", "wins", "p"], rows
    )


def _chart(row: GameMetrics) -> str:
    if not row.agents:
        return ""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(row.agents)), 3))
    names = [a.agent for a in row.agents]
    vals = [a.win_rate.value or 0.0 for a in row.agents]
    lo = [
        max(0.0, v - (a.win_rate.low if a.win_rate.low is not None else v))
        for v, a in zip(vals, row.agents, strict=True)
    ]
    hi = [
        max(0.0, (a.win_rate.high if a.win_rate.high is not None else v) - v)
        for v, a in zip(vals, row.agents, strict=True)
    ]
    ax.bar(names, vals, yerr=[lo, hi], capsize=4, color="#6a9fd8")
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate (95% Wilson CI)")
    ax.set_title(row.env_id, fontsize=10)
    src = png(fig)
    plt.close(fig)
    return f"<img alt='win rates {esc(row.env_id)}' src='{src}'>"


def games_report(run: RunDir, rows: list[GameMetrics]) -> list[str]:
    parts: list[str] = []
    for row in rows:
        info = ", ".join(f"{k}={v}" for k, v in row.info.items())
        parts.append(f"<h2>{esc(row.env_id)}: {row.episodes} episodes</h2>")
        if info:
            parts.append(f"<p class='dim'>{esc(info)}</p>")
        parts += [_chart(row), _leaderboard(row), _pairs(row)]
    episodes = run.records("episodes").read_dicts()
    if episodes:
        parts.append(
            f"<h2>Replays</h2><p class='dim'>{min(len(episodes), MAX_REPLAYS)} of {len(episodes)} episodes; "
            "refused attempts are shown in red with the raw model output and the reason. "
            "<code>selflab view</code> steps through any episode.</p>"
        )
        parts += [episode_html(ep, open_=(i == 0)) for i, ep in enumerate(episodes[:MAX_REPLAYS])]
    return parts


def episodes_table(episodes: list[dict[str, Any]]) -> str:
    """One line per episode (id, seats, winners, refused attempts), for `selflab view`."""
    rows = []
    for i, ep in enumerate(episodes):
        refused = sum(1 for s in ep.get("steps", []) if s.get("error"))
        link = Raw(f"<a href='episode/{i}'>{esc(ep.get('episode_id', i))}</a>")
        rows.append([link, ep.get("env_id"), ", ".join(ep.get("agents", [])), ep.get("winners"), refused,
                     ep.get("turns")])  # fmt: skip
    return table(["episode", "env", "agents", "winners", "refused attempts", "turns"], rows)
