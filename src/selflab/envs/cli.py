"""`selflab play`, `selflab games`, `selflab replay`, `selflab tournament`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selflab.errors import ConfigError, SelflabError
from selflab.execution.cli import ExecutorOpt, RayAddressOpt, WorkersOpt, check_flags, open_executor

console = Console()


def resolve_game(game: str) -> str:
    """ "perudo" -> the latest "perudo-v<N>"; a full id passes through."""
    from selflab.envs.registry import list_envs

    ids = [s.id for s in list_envs()]
    if game in ids:
        return game
    versions = sorted((s for s in list_envs() if s.name == game), key=lambda s: s.version)
    if versions:
        return versions[-1].id
    raise ConfigError(f"unknown game {game!r}", f"see `selflab games`; known: {', '.join(ids)}")


def _parse_options(options: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in options:
        if "=" not in item:
            raise ConfigError(f"option {item!r} is not key=value", "write e.g. --opt dice=3")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def results_table(episodes: list, title: str) -> Table:
    from selflab.envs.tournament import summarize

    table = Table(title=title)
    for col in (
        "agent",
        "seats",
        "wins",
        "win rate [95% CI]",
        "mean reward",
        "invalid rate",
        "defaults",
        "mean turns",
    ):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for s in summarize(episodes).values():
        lo, hi = s.ci
        table.add_row(
            s.agent, str(s.seats), str(s.wins), f"{s.win_rate:.3f} [{lo:.3f}, {hi:.3f}]", f"{s.mean_reward:.3f}",
            f"{s.invalid_rate:.3f}", str(s.defaults), f"{s.mean_turns:.1f}",
        )  # fmt: skip
    return table


def register(app: typer.Typer) -> None:
    """Add the game commands to the main app."""

    @app.command("play")
    def play_cmd(
        game: Annotated[
            str, typer.Argument(help="Game id or name, e.g. perudo-v0 or perudo (see `selflab games`).")
        ],
        agents: Annotated[
            str,
            typer.Option(
                "--agents",
                "-a",
                help="Comma-separated agent per seat: scripted, random, fuzz, llm:<model spec>.",
            ),
        ] = "scripted,random",
        episodes: Annotated[int, typer.Option("--episodes", "-n", min=1)] = 10,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        opt: Annotated[
            list[str] | None, typer.Option("--opt", help="Game option key=value (repeatable), e.g. dice=3.")
        ] = None,
        concurrency: Annotated[
            int, typer.Option("--concurrency", min=1, help="Episodes in flight at once.")
        ] = 64,
        max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 64,
        temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.7,
        out: Annotated[
            Path | None, typer.Option("--out", help="Run directory (default runs/play-<game>-<time>).")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue a run directory; finished episodes are kept.")
        ] = False,
        no_rotate: Annotated[
            bool, typer.Option("--no-rotate", help="Keep agents in their seats (no seat rotation).")
        ] = False,
        executor: ExecutorOpt = "local",
        workers: WorkersOpt = None,
        ray_address: RayAddressOpt = None,
    ) -> None:
        """Play episodes and print wins per agent with 95% CIs, invalid-action rates and mean turns."""
        from selflab.envs.runner import play, schedule
        from selflab.envs.trajectories import to_dpo, to_sft
        from selflab.results import finish, game_rows
        from selflab.runs import RunDir

        env_id = resolve_game(game)
        names = [a.strip() for a in agents.split(",") if a.strip()]
        if not names:
            raise ConfigError("no agents given", "pass e.g. --agents scripted,random")
        env_kwargs = _parse_options(opt or [])
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = out or Path("runs") / f"play-{env_id}-{stamp}"
        config = {"game": env_id, "agents": names, "episodes": episodes, "seed": seed, "env_kwargs": env_kwargs,
                  "max_new_tokens": max_new_tokens, "temperature": temperature, "rotate": not no_rotate}  # fmt: skip
        check_flags(executor, workers, ray_address)
        run = RunDir.create(path, config=config, seed=seed, resume=resume, command="selflab play")
        specs = schedule(env_id, names, episodes, seed=seed, env_kwargs=env_kwargs, rotate=not no_rotate)
        llm_opts = {"max_new_tokens": max_new_tokens, "temperature": temperature}
        llm_specs = sorted({n[4:] for n in names if n.startswith("llm:")})
        with open_executor(executor, workers, ray_address, models=llm_specs) as ex:
            result = play(specs, concurrency=concurrency, run=run, progress=True, agent_options={"llm": llm_opts},
                          executor=ex)  # fmt: skip
        eps = result.episodes
        console.print(results_table(eps, f"{env_id}: {len(eps)} episodes, seed {seed}"))
        st = result.stats
        if st.model_calls:
            console.print(
                f"model calls {st.model_calls}, requests {st.requests}, mean batch {st.mean_batch:.1f}, "
                f"{st.completion_tokens} tokens generated, {st.tokens_per_s:.1f} tok/s"
            )
        sft, dpo = to_sft(eps), to_dpo(eps)
        if sft:
            run.export_parquet("sft", sft_rows(sft))
        if dpo:
            run.export_parquet("dpo", sft_rows(dpo))
        finish(run, game_rows("selflab play", eps, wall_s=st.wall_s, sft_rows=len(sft), dpo_rows=len(dpo)))
        console.print(
            f"episodes recorded in {run.path}/records/episodes.jsonl; replay with `selflab replay {run.path} 0`"
        )

    @app.command("games")
    def games_cmd() -> None:
        """List games, their variants, default options and agents."""
        from selflab.envs.games import FAILED
        from selflab.envs.registry import list_envs

        table = Table(title="selflab games")
        for col in ("id", "description", "defaults", "agents"):
            table.add_column(col)
        for s in list_envs():
            defaults = ", ".join(f"{k}={v}" for k, v in s.kwargs.items())
            table.add_row(
                s.id, s.description, defaults, ", ".join(sorted({*s.agents, "random", "fuzz", "llm:<model>"}))
            )
        console.print(table)
        for name, err in FAILED.items():
            console.print(f"[red]game {name!r} failed to load:[/red] {err}")

    @app.command("replay")
    def replay_cmd(
        run: Annotated[Path, typer.Argument(help="Run directory (or an episodes .jsonl file).")],
        episode: Annotated[str, typer.Argument(help="Episode id (e.g. ep00003) or index (0-based).")],
        player: Annotated[
            int | None, typer.Option("--player", help="Show only what this player could see.")
        ] = None,
        raw: Annotated[
            bool, typer.Option("--raw", help="Also show the raw output of accepted moves.")
        ] = False,
    ) -> None:
        """Show an episode in the terminal: the transcript, with every refused attempt (raw model
        output and the reason it was refused) before the messages of its turn."""
        from selflab.report.replay import events

        record = load_episode(run, episode)
        console.print(render_header(record))
        styles = {"reveal": "bold yellow", "system": "dim", "private": "cyan", "action": "green"}
        for e in events(record.model_dump(mode="json"), player=player, accepted=raw):
            if e.kind == "message":
                to = "" if e.recipients is None else " -> " + ",".join(f"P{r}" for r in e.recipients)
                style = styles.get(e.msg_type, "")
                line = f"t{e.turn:>3} [{e.who}{to}] {e.text}"
                console.print(f"[{style}]{escape(line)}[/{style}]" if style else line, highlight=False,
                              markup=bool(style))  # fmt: skip
                continue
            color = "red" if e.kind == "refused" else "yellow" if e.kind == "defaulted" else "green"
            what = f"{e.kind}: {e.reason}" if e.reason else f"{e.kind}: {e.text!r}"
            console.print(
                f"[{color}]t{e.turn:>3} [{escape(e.who)}] {escape(what)}[/{color}]", highlight=False
            )
            if e.raw:
                console.print("      raw: " + e.raw.strip().replace("\n", "\n           "), markup=False,
                              highlight=False)  # fmt: skip
        console.print(
            f"[bold]outcome:[/bold] {record.outcome}; winners {record.winners}; rewards {record.rewards}"
        )

    @app.command("tournament")
    def tournament_cmd(
        game: Annotated[str, typer.Argument(help="Game id or name.")],
        agents: Annotated[
            str, typer.Option("--agents", "-a", help="Comma-separated agents (at least two).")
        ] = "scripted,random",
        episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes per pair.")] = 20,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        opt: Annotated[
            list[str] | None, typer.Option("--opt", help="Game option key=value (repeatable).")
        ] = None,
        max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 64,
        out: Annotated[
            Path | None, typer.Option("--out", help="Run directory (default runs/tournament-<game>-<time>).")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue a run directory; finished episodes are kept.")
        ] = False,
    ) -> None:
        """Round-robin between agents: win rates with CIs, Elo, TrueSkill and pairwise tests."""
        from selflab.envs.tournament import round_robin
        from selflab.results import finish, game_rows
        from selflab.runs import RunDir

        env_id = resolve_game(game)
        names = [a.strip() for a in agents.split(",") if a.strip()]
        if len(set(names)) < 2:
            raise ConfigError(
                "a tournament needs at least two different agents",
                "pass e.g. --agents scripted,random,bluffer",
            )
        env_kwargs = _parse_options(opt or [])
        path = out or Path("runs") / f"tournament-{env_id}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        config = {"game": env_id, "agents": names, "episodes_per_pair": episodes, "seed": seed,
                  "env_kwargs": env_kwargs, "max_new_tokens": max_new_tokens}  # fmt: skip
        run = RunDir.create(path, config=config, seed=seed, resume=resume, command="selflab tournament")
        result = round_robin(env_id, names, episodes, seed=seed, env_kwargs=env_kwargs, progress=True, run=run,
                             agent_options={"llm": {"max_new_tokens": max_new_tokens}})  # fmt: skip
        table = Table(title=f"{env_id} round-robin, {episodes} episodes per pair")
        for col in ("agent", "win rate [95% CI]", "invalid rate", "Elo", "TrueSkill mu±sigma"):
            table.add_column(col)
        for row in result.leaderboard():
            table.add_row(row["agent"], f"{row['win_rate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]",
                          f"{row['invalid_rate']:.3f}", f"{row['elo']:.0f}",
                          f"{row['trueskill_mu']:.1f}±{row['trueskill_sigma']:.1f}")  # fmt: skip
        console.print(table)
        for (a, b), h in result.pairs.items():
            console.print(f"{a} vs {b}: {h.a_wins}-{h.b_wins} (of {h.episodes}), p={h.p_value:.2g}")
        wall = sum(r.stats.wall_s for r in result.runs)
        finish(run, game_rows("selflab tournament", result.episodes, wall_s=wall))

    @app.command("baselines")
    def baselines_cmd(
        games: Annotated[
            str, typer.Option("--games", help="Comma-separated games (default: all), e.g. perudo,spy.")
        ] = "",
        llm: Annotated[
            str | None,
            typer.Option(
                "--llm", help="Model spec to play against scripted (omit for scripted vs random only)."
            ),
        ] = None,
        episodes: Annotated[
            int, typer.Option("--episodes", "-n", min=1, help="Scripted-vs-random episodes per game.")
        ] = 200,
        llm_episodes: Annotated[
            int, typer.Option("--llm-episodes", min=1, help="LLM-vs-scripted episodes per game.")
        ] = 16,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 48,
        temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.7,
        context_tokens: Annotated[
            int,
            typer.Option("--context-tokens", min=256, help="LLM prompt budget; oldest turns are dropped."),
        ] = 1024,
        out: Annotated[
            Path | None, typer.Option("--out", help="Run directory (default runs/baselines-<time>).")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Keep the episodes already recorded in --out.")
        ] = False,
        executor: ExecutorOpt = "local",
        workers: WorkersOpt = None,
        ray_address: RayAddressOpt = None,
        constraints: Annotated[
            bool,
            typer.Option(
                "--constraints/--no-constraints",
                help="LLM moves decoded under each game's move grammar (default), or free text.",
            ),
        ] = True,
        scripted_rows: Annotated[
            bool, typer.Option("--scripted/--no-scripted", help="Include the scripted-vs-random rows.")
        ] = True,
    ) -> None:
        """Per game: scripted vs random and (with --llm) the LLM vs scripted and vs random, with 95%
        CIs, exact tests and invalid-action rates (parse errors and rule violations apart). Writes
        baselines.json and baselines.md to the run directory."""
        from selflab.envs.baselines import VARIANTS, matchups, run_baselines
        from selflab.runs import RunDir

        chosen = [g.strip() for g in games.split(",") if g.strip()] or list(VARIANTS)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = out or Path("runs") / f"baselines-{stamp}"
        llm_options = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "context_tokens": context_tokens,
            "constrained": constraints,
        }
        config = {"games": chosen, "llm": llm, "episodes": episodes, "llm_episodes": llm_episodes, "seed": seed,
                  "llm_options": llm_options, "scripted": scripted_rows}  # fmt: skip
        todo = matchups(chosen, llm, episodes, llm_episodes, seed, scripted=scripted_rows)
        check_flags(executor, workers, ray_address)
        run = RunDir.create(path, config=config, seed=seed, resume=resume, command="selflab baselines")
        with open_executor(executor, workers, ray_address, models=[llm] if llm else None) as ex:
            results, stats = run_baselines(todo, run=run, llm_options=llm_options, progress=True, executor=ex)
        table = Table(
            title=f"game baselines, seed {seed} (win rate [95% Wilson CI]; p: exact two-sided test)"
        )
        cols = (
            "game",
            "variant",
            "A vs B",
            "A win",
            "B win",
            "A>B / B>A",
            "p",
            "A invalid (parse/rule)",
            "episodes",
        )
        for col in cols:
            table.add_column(col)
        lines = ["| game | variant | A vs B | A win [95% CI] | B win [95% CI] | A>B / B>A | p | A invalid (parse / rule) | episodes |",
                 "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in results:
            a, b = r.a_stats, r.b_stats
            cells = [r.game, r.env_id, f"{r.a} vs {r.b}" + (" (solo)" if r.solo else ""),
                     f"{a.win_rate:.2f} [{a.ci[0]:.2f}, {a.ci[1]:.2f}]", f"{b.win_rate:.2f} [{b.ci[0]:.2f}, {b.ci[1]:.2f}]",
                     f"{r.a_better} / {r.b_better}", f"{r.p_value:.2g}",
                     f"{a.invalid_rate:.3f} ({a.parse_rate:.3f} / {a.rule_rate:.3f})", str(r.episodes)]  # fmt: skip
            table.add_row(*cells)
            lines.append("| " + " | ".join(cells) + " |")
        console.print(table)
        (run.path / "baselines.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if stats.model_calls:
            console.print(
                f"wall {stats.wall_s:.0f} s, model calls {stats.model_calls}, mean batch {stats.mean_batch:.1f}, "
                f"{stats.completion_tokens} tokens generated, {stats.tokens_per_s:.1f} tok/s"
            )
        console.print(
            f"results in {run.path}/baselines.json and baselines.md; episodes in records/episodes.jsonl"
        )
        from selflab.envs.trajectories import EpisodeRecord
        from selflab.results import finish, game_rows

        eps = run.records("episodes").read(EpisodeRecord)
        finish(run, game_rows("selflab baselines", eps, wall_s=stats.wall_s))


def sft_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parquet-friendly rows: nested message lists stay, other values become plain scalars."""
    return [
        {k: v if isinstance(v, (str, int, float, bool, list)) or v is None else str(v) for k, v in r.items()}
        for r in rows
    ]


def load_episode(run: Path, episode: str):  # noqa: ANN201 - EpisodeRecord, imported lazily
    from selflab.envs.trajectories import EpisodeRecord
    from selflab.runs import RecordLog

    path = run if run.suffix == ".jsonl" else run / "records" / "episodes.jsonl"
    if not path.is_file():
        raise SelflabError(f"no episodes found at {path}", "pass a run directory made by `selflab play`")
    records = RecordLog(path).read(EpisodeRecord)
    if not records:
        raise SelflabError(f"{path} holds no complete episode", "play some episodes first")
    for r in records:
        if r.episode_id == episode:
            return r
    if episode.lstrip("-").isdigit() and -len(records) <= int(episode) < len(records):
        return records[int(episode)]
    raise SelflabError(
        f"episode {episode!r} not in {path}",
        f"use an index 0..{len(records) - 1} or an id like {records[0].episode_id}",
    )


def render_header(record: Any) -> str:
    seats = ", ".join(f"P{i}={a}" for i, a in enumerate(record.agents))
    return f"[bold]{record.episode_id}[/bold] {record.env_id} seed={record.seed} {record.env_kwargs or ''}\nseats: {seats}"
