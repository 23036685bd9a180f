"""`selflab play`, `selflab games`, `selflab replay`, `selflab tournament`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selflab.cli_options import config_options, default_out, merge, parse_sets, validate
from selflab.console import fit
from selflab.envs.cli_config import BaselinesConfig, PlayConfig, TournamentConfig
from selflab.errors import ConfigError, SelflabError
from selflab.execution.cli import ExecutorOpt, RayAddressOpt, WorkersOpt, check_flags, open_executor

console = Console()  # results
log = Console(stderr=True)  # progress and where things were written


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


FLAGS = {"agents": ["--agents", "-a"], "episodes": ["--episodes", "-n"]}
OptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--opt", help="Game option key=value (repeatable), e.g. dice=3; same as --set env_kwargs.KEY=V."
    ),
]

G = TypeVar("G", PlayConfig, TournamentConfig)


def _resolved(cfg: G, opt: list[str] | None) -> G:
    """The game id resolved, `--opt` merged into env_kwargs, a bare `llm` agent bound to --model."""
    if "llm" in cfg.agents and not cfg.model:
        raise ConfigError("agent 'llm' needs a model", "pass --model SPEC, or write llm:SPEC")
    agents = [f"llm:{cfg.model}" if a == "llm" else a for a in cfg.agents]
    env_kwargs = merge(cfg.env_kwargs, parse_sets(opt, "--opt"))
    data = {**cfg.model_dump(), "game": resolve_game(cfg.game), "agents": agents, "env_kwargs": env_kwargs}
    return validate(type(cfg), data)


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
    fit(table)
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
    @config_options(PlayConfig, arguments=("game",), flags=FLAGS)
    def play_cmd(
        cfg: PlayConfig, out: Path | None, resume: bool, opt: OptOpt = None, executor: ExecutorOpt = "local",
        workers: WorkersOpt = None, ray_address: RayAddressOpt = None,
    ) -> None:  # fmt: skip
        """Play episodes and print wins per agent with 95% CIs, invalid-action rates and mean turns."""
        from selflab.envs.runner import play, schedule
        from selflab.envs.trajectories import to_dpo, to_sft
        from selflab.results import finish, game_rows
        from selflab.runs import RunDir

        cfg = _resolved(cfg, opt)
        names, env_id, seed = cfg.agents, cfg.game, cfg.seed
        if not names:
            raise ConfigError("no agents given", "pass e.g. --agents scripted,random")
        check_flags(executor, workers, ray_address)
        path = out or default_out("play", env_id)
        run = RunDir.create(path, config=cfg, seed=seed, resume=resume, command="selflab play")
        specs = schedule(env_id, names, cfg.episodes, seed=seed, env_kwargs=cfg.env_kwargs, rotate=cfg.rotate)
        llm_opts = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature}
        llm_specs = sorted({n[4:] for n in names if n.startswith("llm:")})
        with open_executor(executor, workers, ray_address, models=llm_specs) as ex:
            result = play(specs, concurrency=cfg.concurrency, run=run, progress=True,
                          agent_options={"llm": llm_opts}, executor=ex)  # fmt: skip
        eps = result.episodes
        console.print(results_table(eps, f"{env_id}: {len(eps)} episodes, seed {seed}"))
        st = result.stats
        if st.model_calls:
            log.print(
                f"model calls {st.model_calls}, requests {st.requests}, mean batch {st.mean_batch:.1f}, "
                f"{st.completion_tokens} tokens generated, {st.tokens_per_s:.1f} tok/s"
            )
        sft, dpo = to_sft(eps), to_dpo(eps)
        if sft:
            run.export_parquet("sft", sft_rows(sft))
        if dpo:
            run.export_parquet("dpo", sft_rows(dpo))
        finish(run, game_rows("selflab play", eps, wall_s=st.wall_s, sft_rows=len(sft), dpo_rows=len(dpo)))
        log.print(
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
        fit(table)
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
        """Show an episode: the transcript with every refused attempt, its raw output and the reason."""
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
    @config_options(TournamentConfig, arguments=("game",), flags=FLAGS)
    def tournament_cmd(
        cfg: TournamentConfig, out: Path | None, resume: bool, opt: OptOpt = None, executor: ExecutorOpt = "local",
        workers: WorkersOpt = None, ray_address: RayAddressOpt = None,
    ) -> None:  # fmt: skip
        """Round-robin between agents: win rates with CIs, Elo, TrueSkill and pairwise tests."""
        from selflab.envs.tournament import round_robin
        from selflab.results import finish, game_rows
        from selflab.runs import RunDir

        cfg = _resolved(cfg, opt)
        names, env_id, seed, episodes = cfg.agents, cfg.game, cfg.seed, cfg.episodes
        if len(set(names)) < 2:
            raise ConfigError(
                "a tournament needs at least two different agents",
                "pass e.g. --agents scripted,random,bluffer",
            )
        check_flags(executor, workers, ray_address)
        path = out or default_out("tournament", env_id)
        run = RunDir.create(path, config=cfg, seed=seed, resume=resume, command="selflab tournament")
        llm_specs = sorted({n[4:] for n in names if n.startswith("llm:")})
        with open_executor(executor, workers, ray_address, models=llm_specs) as ex:
            result = round_robin(env_id, names, episodes, seed=seed, env_kwargs=cfg.env_kwargs, progress=True,
                                 run=run, agent_options={"llm": {"max_new_tokens": cfg.max_new_tokens}},
                                 executor=ex)  # fmt: skip
        table = Table(title=f"{env_id} round-robin, {episodes} episodes per pair")
        for col in ("agent", "win rate [95% CI]", "invalid rate", "Elo", "TrueSkill mu±sigma"):
            table.add_column(col)
        fit(table)
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
    @config_options(
        BaselinesConfig, flags={"episodes": ["--episodes", "-n"]}, deprecated={"model": ["--llm"]}
    )
    def baselines_cmd(
        cfg: BaselinesConfig, out: Path | None, resume: bool, executor: ExecutorOpt = "local",
        workers: WorkersOpt = None, ray_address: RayAddressOpt = None,
    ) -> None:  # fmt: skip
        """Per game: scripted vs random and (with --model) the LLM vs scripted and vs random, with 95%
        CIs, exact tests and invalid-action rates (parse errors and rule violations apart). Writes
        baselines.json and baselines.md to the run directory."""
        from selflab.envs.baselines import VARIANTS, matchups, run_baselines
        from selflab.runs import RunDir

        chosen, llm, seed = cfg.games or list(VARIANTS), cfg.model, cfg.seed
        llm_options = {
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "context_tokens": cfg.context_tokens,
            "constrained": cfg.constraints,
        }
        todo = matchups(chosen, llm, cfg.episodes, cfg.llm_episodes, seed, scripted=cfg.scripted)
        check_flags(executor, workers, ray_address)
        run = RunDir.create(out or default_out("baselines"), config=cfg.model_copy(update={"games": chosen}),
                            seed=seed, resume=resume, command="selflab baselines")  # fmt: skip
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
        fit(table)
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
            log.print(
                f"wall {stats.wall_s:.0f} s, model calls {stats.model_calls}, mean batch {stats.mean_batch:.1f}, "
                f"{stats.completion_tokens} tokens generated, {stats.tokens_per_s:.1f} tok/s"
            )
        log.print(
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
