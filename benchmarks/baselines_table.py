"""The markdown table of `selflab baselines --llm ...` runs, with and without move grammars.

Why: an LLM baselines run on a slow CPU is often cut by a timeout, and then it never writes its
`baselines.json`. This rebuilds every row from what a run keeps as it goes (`run.yaml`'s config and
`records/episodes.jsonl`), with the same analysis as the CLI (`selflab.envs.baselines.analyse`), so
the table in docs/games.md can be regenerated from the run directories:

    python benchmarks/baselines_table.py runs/constrained-* runs/free-*

One row per (game, grammar on/off): the LLM's win rate against the scripted and the random agent
(Wilson 95% CI, the opponent's win rate, exact two-sided p), its invalid-move rate over all its
attempts split into parse errors and rule violations, its moves (attempts) and finished episodes.
Below the table, the rules the LLM broke (the env's reasons, counted) for every row that has any.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from selflab.envs.baselines import VARIANTS, Matchup, MatchupResult, analyse, matchups
from selflab.envs.tournament import AgentStats, summarize
from selflab.envs.trajectories import EpisodeRecord

HEADER = (
    "| game (variant) | grammar | LLM vs scripted: LLM win [95% CI] (opp. win) | p "
    "| LLM vs random: LLM win [95% CI] (opp. win) | p | LLM invalid: all (parse / rule) "
    "| LLM moves | LLM episodes (vs scripted + vs random) |\n|---|---|---|---|---|---|---|---|---|"
)


def load_run(path: Path) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """The run's baselines config and its finished episodes (a cut run keeps those it finished)."""
    config = yaml.safe_load((path / "run.yaml").read_text(encoding="utf-8"))["config"]
    log = path / "records" / "episodes.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return config, [EpisodeRecord.model_validate(json.loads(x)) for x in lines if x.strip()]


def llm_episodes(m: Matchup, episodes: list[EpisodeRecord]) -> list[EpisodeRecord]:
    """The episodes of one matchup in which the LLM played (solo games: the 'a' side only)."""
    mine = [e for e in episodes if e.episode_id.startswith(m.prefix)]
    return [e for e in mine if e.episode_id[len(m.prefix)] == "a"] if m.solo else mine


def _win(r: MatchupResult, n: int) -> tuple[str, str]:
    if n == 0:
        return "not reached", ""
    a, b = r.a_stats, r.b_stats
    return f"{a.win_rate:.2f} [{a.ci[0]:.2f}, {a.ci[1]:.2f}] ({b.win_rate:.2f})", f"{r.p_value:.2g}"


def rows(path: Path) -> list[tuple[str, bool, str, Counter[str]]]:
    """(game, constrained, markdown row, rule-violation reasons) for every game of one run."""
    config, episodes = load_run(path)
    llm = config.get("llm")
    if not llm:
        return []
    constrained = bool(config.get("llm_options", {}).get("constrained", True))
    todo = matchups(config["games"], llm, 1, int(config["llm_episodes"]), int(config["seed"]), scripted=False)
    out = []
    for game in config["games"]:
        cells, llm_eps = [], []
        for m in (t for t in todo if t.game == game):
            mine = llm_episodes(m, episodes)
            llm_eps.append(mine)
            cells.extend(_win(analyse(m, episodes), len(mine)))
        flat = [e for eps in llm_eps for e in eps]
        s = summarize(flat).get(f"llm:{llm}", AgentStats(f"llm:{llm}"))
        reasons = Counter(
            st.error.get("reason", "")[:100]
            for e in flat
            for st in e.steps
            if st.agent == f"llm:{llm}" and st.error is not None and st.error.get("kind") == "rule"
        )
        invalid = f"{s.invalid_rate:.3f} ({s.parse_rate:.3f} / {s.rule_rate:.3f})" if s.attempts else "-"
        row = [f"{game} ({VARIANTS[game]})", "on" if constrained else "off", *cells, invalid,
               str(s.attempts), f"{len(llm_eps[0])} + {len(llm_eps[1])}"]  # fmt: skip
        out.append((game, constrained, "| " + " | ".join(row) + " |", reasons))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories of `selflab baselines --llm`")
    args = ap.parse_args()
    found = [r for p in args.runs for r in rows(p)]
    order = list(VARIANTS)
    found.sort(key=lambda r: (order.index(r[0]), not r[1]))
    print(HEADER)
    for _, _, row, _ in found:
        print(row)
    print()
    for game, constrained, _, reasons in found:
        if reasons:
            listed = "; ".join(f"{n}x {why}" for why, n in reasons.most_common())
            print(f"- {game}, grammar {'on' if constrained else 'off'}: {listed}")


if __name__ == "__main__":
    main()
