"""Game self-play loop: data rules by hand (winners / above-average filters, role balance, KTO
ties, DPO format pairs), evaluation measures, and one full iteration on the tiny llama."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.envs.llm_agent import LLMAgent
from selflab.envs.trajectories import EpisodeRecord, StepRecord
from selflab.loops import game_selfplay as gs
from selflab.loops.base import get_loop, open_run
from selflab.models.testing import tiny_llama
from selflab.runs import RunDir


def _step(
    i: int, player: int, agent: str, move: str, error: bool = False, turn: int | None = None
) -> StepRecord:
    return StepRecord(
        index=i, turn=i if turn is None else turn, player=player, agent=agent, observation=f"obs {i} p{player}",
        raw_output=f"ACTION: {move}", parsed_action=move, applied_action=None if error else move,
        error={"kind": "rule", "reason": "bad"} if error else None,
        prompt=[{"role": "system", "content": "rules"}, {"role": "user", "content": f"obs {i} p{player}"}],
    )  # fmt: skip


def _episode(eid: str, agents: list[str], winner: int, moves: dict[int, int], bad: int = 0) -> EpisodeRecord:
    """`moves[p]` accepted moves per player; `bad` refused attempts by player 0 (before its first move)."""
    steps = []
    for _ in range(bad):
        steps.append(
            _step(len(steps), 0, agents[0], "nonsense", error=True, turn=bad)
        )  # same turn as p0's move
    for p, n in moves.items():
        for _ in range(n):
            steps.append(_step(len(steps), p, agents[p], f"bid {len(steps)} 2"))
    return EpisodeRecord(
        episode_id=eid, env_id="perudo-small-v0", agents=agents,
        rewards={0: 1.0 if winner == 0 else 0.0, 1: 1.0 if winner == 1 else 0.0}, winners=[winner], steps=steps,
    )  # fmt: skip


L = gs.LEARNER


def _episodes() -> list[EpisodeRecord]:
    return [
        _episode("a", [L, "scripted"], 0, {0: 3, 1: 2}),  # learner seat 0 wins: 3 moves
        _episode("b", ["scripted", L], 0, {0: 2, 1: 2}),  # learner seat 1 loses
        _episode("c", [L, L], 1, {0: 1, 1: 2}, bad=1),  # self-play: seat 1 wins (2 moves), seat 0 loses
    ]


def test_filtered_bc_winners_with_role_balance() -> None:
    d = gs.build_game_data(_episodes(), "filtered_bc", "winners", role_balance=False)
    c = d.counts
    assert c["learner_seats"] == 4 and c["learner_wins"] == 2
    assert c["accepted_moves"] == 3 + 2 + 1 + 2 and c["refused_or_defaulted_moves"] == 1
    assert len(d.sft) == 5 and c["dropped_moves"] == 3  # winners: a/p0 (3) + c/p1 (2)
    assert all(e.prompt[0].role == "system" and e.response.startswith("ACTION:") for e in d.sft)
    # role balance: seat 0 has 3, seat 1 has 2 -> seat 1 upsampled by 1
    d = gs.build_game_data(_episodes(), "filtered_bc", "winners", role_balance=True, seed=3)
    assert d.counts["role0_examples"] == 3 and d.counts["role1_examples"] == 2
    assert d.counts["role1_upsampled"] == 1 and len(d.sft) == 6
    ids = sorted(e.id.split(":")[1] for e in d.sft)
    assert ids.count("0") == ids.count("1") == 3


def test_above_average_and_kto_ties() -> None:
    eps = _episodes()
    # learner rewards: 1 (a), 0 (b), 0 and 1 (c): mean 0.5 -> the winners' seats are above average
    d = gs.build_game_data(eps, "filtered_bc", "above_average", role_balance=False)
    assert len(d.sft) == 5 and d.counts["mean_learner_reward"] == 0.5
    k = gs.build_game_data(eps, "outcome_kto", role_balance=False)
    assert k.counts["desirable"] == 5 and k.counts["undesirable"] == 3
    assert k.counts.get("dropped_tie_with_mean", 0) == 0
    # a draw at the mean is dropped and counted
    tie = _episode("d", [L, "scripted"], 0, {0: 2, 1: 1})
    tie.rewards = {0: 0.5, 1: 0.5}
    k2 = gs.build_game_data([*eps[:2], tie], "outcome_kto", role_balance=False)
    assert k2.counts["mean_learner_reward"] == 0.5 and k2.counts["dropped_tie_with_mean"] == 2


def test_dpo_format_pairs_only_learner() -> None:
    eps = _episodes()
    eps.append(_episode("e", ["scripted", L], 1, {0: 1, 1: 1}, bad=1))  # the refusal is the scripted seat's
    d = gs.build_game_data(eps, "outcome_dpo", role_balance=False)
    assert d.counts["format_pairs"] == 1 and len(d.pairs) == 1
    p = d.pairs[0]
    assert p.rejected == "ACTION: nonsense" and p.chosen.startswith("ACTION: bid")


def test_spag_weights_winners_turns_by_decay() -> None:
    d = gs.build_game_data(_episodes(), "spag", role_balance=False, gamma=0.5)
    assert d.counts["dropped_moves"] == 3  # only the winners' turns: a/p0 (3) and c/p1 (2)
    weights = sorted((e.id.rsplit(":", 1)[0], e.weight) for e in d.sft)
    assert [w for k, w in weights if k == "a:0"] == [0.25, 0.5, 1.0]  # last turn 1, earlier decayed
    assert [w for k, w in weights if k == "c:1"] == [0.5, 1.0]


def test_outcome_pairs_are_the_learners_own_moves_at_one_history() -> None:
    def ep(eid: str, agents: list[str], winner: int, move: str) -> EpisodeRecord:
        e = _episode(eid, agents, winner, {0: 1, 1: 1})
        e.steps[0] = e.steps[0].model_copy(update={"raw_output": f"ACTION: {move}", "applied_action": move})
        return e

    won = ep("w", [L, "scripted"], 0, "bid 1 2")
    lost_learner = ep("l", [L, "scripted"], 1, "bid 9 9")
    lost_other = ep("o", ["scripted", L], 1, "bid 5 5")  # seat 0 is not the learner
    d = gs.build_game_data([won, lost_learner, lost_other], "outcome_dpo", role_balance=False)
    outcome = [p for p in d.pairs if p.source == "game-outcome"]
    assert [(p.chosen, p.rejected) for p in outcome] == [("ACTION: bid 1 2", "ACTION: bid 9 9")]


def test_eval_opponents_never_trained_against(tiny: Path, tmp_path: Path) -> None:
    from selflab.errors import ConfigError

    with pytest.raises(ConfigError, match="variant of"):
        cfg = gs.GameSelfPlayConfig(
            model=f"hf:{tiny}", opponents=["self", "bluffer"], eval_opponents=["scripted"]
        )
        open_run(gs.GameSelfPlayLoop, tmp_path / "run", cfg, resume=False)


def test_eval_measures_by_hand() -> None:
    eps = _episodes()[:2]
    ms = {m.name: m for m in gs.eval_measures({"scripted": eps}, None)}
    assert ms["win_rate_vs_scripted"].values == [True, False]
    assert ms["reward_vs_scripted"].values == [1.0, 0.0]
    assert ms["invalid_action_rate"].values == [0.0, 0.0]
    assert ms["move_tokens"].values == [0.0, 0.0]
    assert "self_assessed_win" not in ms


class _LegalLLM(LLMAgent):
    """The tiny random model never writes a legal move; this seat still calls the model (batched,
    recorded) but plays a seeded legal move, so the loop gets accepted moves and outcomes."""

    def prepare(self, observation):  # type: ignore[no-untyped-def]
        self._obs = observation
        return super().prepare(observation)

    def consume(self, completion):  # type: ignore[no-untyped-def]
        super().consume(completion)
        move = self.rng.choice(self._obs.legal_actions)
        self._last["raw_output"] = f"ACTION: {move}"
        return f"ACTION: {move}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_one_full_iteration(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    monkeypatch.setattr(gs, "LLMAgent", _LegalLLM)
    assert get_loop("game-selfplay") is gs.GameSelfPlayLoop
    cfg = gs.GameSelfPlayConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            iterations=1,
            episodes=4,
            opponents=["self", "random"],
            eval_opponents=["scripted"],
            eval_episodes=2,
            max_new_tokens=4,
            context_tokens=768,
            train={"lora": True, "max_steps": 1, "batch_size": 2, "max_length": 800},
        )  # fmt: skip
    )
    loop = open_run(gs.GameSelfPlayLoop, tmp_path / "run", cfg, resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in gs.GameSelfPlayLoop.stages]
    eps = run.records("iter-1.play").read(EpisodeRecord)
    assert len(eps) == 4 and sum(e.agents.count(L) for e in eps) == 6  # 2 self-play games, 2 vs random
    assert done["iter-1.play"].info["model_calls"] > 0
    assert done["iter-1.build"].info["examples"] > 0
    assert done["iter-1.train"].info["steps"] == 1
    clear_cache()
    out = load_model(f"hf:{run.path / 'checkpoints' / 'iter-1'}").generate(
        [GenerationRequest.chat("x", max_new_tokens=2)]
    )
    assert out[0].error is None
    clear_cache()
    m1 = metrics[1].metrics
    want = {
        "win_rate_vs_scripted",
        "invalid_action_rate",
        "self_assessed_win",
        "move_tokens",
        "gap_self_minus_objective",
    }
    assert want <= set(m1) and m1["win_rate_vs_scripted"].estimate.n == 2
    assert m1["win_rate_vs_scripted"].vs_baseline is not None


def test_bad_opponent_is_a_clear_error(tiny: Path, tmp_path: Path) -> None:
    from selflab.errors import ConfigError

    cfg = gs.GameSelfPlayConfig(model=f"hf:{tiny}", opponents=["self", "grandmaster"])
    with pytest.raises(ConfigError, match="grandmaster"):
        open_run(gs.GameSelfPlayLoop, tmp_path / "x", cfg, resume=False)


def test_single_player_puzzles_are_played_solo(tiny: Path, tmp_path: Path) -> None:
    from selflab.errors import ConfigError

    with pytest.raises(ConfigError, match="single-player puzzle"):  # default opponents make no sense alone
        open_run(
            gs.GameSelfPlayLoop,
            tmp_path / "a",
            gs.GameSelfPlayConfig(model=f"hf:{tiny}", env_id="blocks-small-v0"),
            resume=False,
        )
    with pytest.raises(ConfigError, match="only for single-player"):
        cfg = gs.GameSelfPlayConfig(model=f"hf:{tiny}", opponents=["self"], eval_opponents=["solo"])
        open_run(gs.GameSelfPlayLoop, tmp_path / "b", cfg, resume=False)
    cfg = gs.GameSelfPlayConfig(
        model=f"hf:{tiny}", env_id="blocks-small-v0", opponents=["solo"], eval_opponents=["solo"],
        episodes=3, eval_episodes=2,
    )  # fmt: skip
    loop = open_run(gs.GameSelfPlayLoop, tmp_path / "c", cfg, resume=False)
    specs, models = loop.training_schedule(1)
    assert [s.agents for s in specs] == [[L]] * 3 and set(models) == {L}
    assert len({s.seed for s in specs}) == 3  # three different puzzles
    plan = loop.eval_schedule()
    assert list(plan) == ["solo"] and [s.agents for s in plan["solo"]] == [[L]] * 2


def test_eval_measures_of_a_puzzle() -> None:
    eps = [
        EpisodeRecord(episode_id=f"p{i}", env_id="blocks-small-v0", agents=[L], rewards={0: r}, winners=w, steps=[])
        for i, (r, w) in enumerate([(1.0, [0]), (0.0, []), (0.5, [0])])
    ]  # fmt: skip
    ms = {m.name: m for m in gs.eval_measures({"solo": eps}, None)}
    assert ms["solve_rate"].values == [True, False, True] and ms["solve_rate"].primary
    assert ms["puzzle_score"].values == [1.0, 0.0, 0.5]
    assert not any(n.startswith(("win_rate", "reward_vs")) for n in ms)
