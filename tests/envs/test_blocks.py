"""Blocks world: hand-computed optimal plan lengths, rule checks, scoring, determinism, fuzzing,
and the planner baseline against random play."""

from __future__ import annotations

import random
from collections import deque

import pytest
from scipy.stats import fisher_exact

from selflab.envs.agents import RandomStringAgent
from selflab.envs.core import ParseError, RuleViolation
from selflab.envs.games.blocks import BlocksEnv, BlocksPlanner, BlocksRandom
from selflab.envs.games.blocks.instances import BlocksInstance, generate, random_state, shipped
from selflab.envs.games.blocks.planner import plan
from selflab.envs.games.blocks.solver import optimal_length, optimal_plan
from selflab.envs.games.blocks.world import (
    TABLE,
    Move,
    apply_move,
    canonical,
    check_move,
    legal_moves,
    parse_move,
)
from selflab.envs.registry import make

S = lambda text: canonical([part.split() for part in text.split("/")])  # noqa: E731  "A B / C": A under B


def play(env, agents, seed):
    env.reset(seed=seed)
    steps = 0
    while not env.done:
        player, obs = env.observe()
        env.step(agents[player].act(obs))
        steps += 1
        assert steps < 500
    return env


# ---------------------------------------------------------------- optimal plan lengths by hand


@pytest.mark.parametrize(
    ("initial", "goal", "expected"),
    [
        ("A C / B", "C B A", 3),  # Sussman anomaly: C on A; goal A on B on C
        ("A B C", "C B A", 3),  # reverse a tower of three
        ("A B C D", "D C B A", 4),  # reverse a tower of four
        ("A B / C D", "A D / C B", 3),  # swap the tops: one must go to the table first
        ("A / B / C", "A B C", 2),  # build a tower from the table
        ("A B C", "A / B / C", 2),  # dismantle a tower
        ("A B / C", "A B C", 1),
    ],
)
def test_optimal_lengths_computed_by_hand(initial, goal, expected):
    assert optimal_length(S(initial), S(goal)) == expected
    assert len(plan(S(initial), S(goal))) >= expected


def _bfs_length(start, goal):
    seen, queue = {start}, deque([(start, 0)])
    while queue:
        state, d = queue.popleft()
        if state == goal:
            return d
        for m in legal_moves(state):
            nxt = apply_move(state, m)
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, d + 1))
    raise AssertionError("unreachable")


def test_astar_matches_exhaustive_bfs_on_small_instances():
    rng = random.Random(5)
    names = list("ABCD")
    for _ in range(40):
        a, b = random_state(names, rng), random_state(names, rng)
        assert optimal_length(a, b) == _bfs_length(a, b)


def test_optimal_plan_executes_to_goal():
    a, b = S("A C / B"), S("C B A")
    state = a
    for move in optimal_plan(a, b):
        assert check_move(state, move) is None
        state = apply_move(state, move)
    assert state == b


def test_planner_solves_every_shipped_instance_within_twice_optimal():
    assert len(shipped()) == 100
    for inst in shipped():
        moves = plan(inst.initial_stacks, inst.goal_stacks)
        state = inst.initial_stacks
        for m in moves:
            assert check_move(state, m) is None
            state = apply_move(state, m)
        assert state == inst.goal_stacks
        assert inst.optimal <= len(moves) <= 2 * inst.optimal


def test_shipped_optimal_lengths_are_right_on_a_sample():
    for inst in shipped()[::10]:
        assert optimal_length(inst.initial_stacks, inst.goal_stacks) == inst.optimal


# ---------------------------------------------------------------- rules


def test_illegal_moves_are_explained():
    state = S("A B / C")
    assert "not clear" in check_move(state, Move("A", TABLE))  # B sits on A
    assert "not clear" in check_move(state, Move("C", "A"))  # target A is covered
    assert "no block" in check_move(state, Move("Z", TABLE))
    assert "itself" in check_move(state, Move("B", "B"))
    assert "already on the table" in check_move(state, Move("C", TABLE))
    assert check_move(state, Move("B", "C")) is None
    assert apply_move(state, Move("B", "C")) == S("A / C B")


def test_parse_move_is_tolerant_but_strict_about_format():
    assert parse_move("move A B") == Move("A", "B")
    assert parse_move("I think... Move c onto the table.") == Move("C", TABLE)
    assert parse_move("move b to a") == Move("B", "A")
    assert parse_move("move A then move B C") == Move("B", "C")  # the last move counts
    assert parse_move("put A on B") is None


def test_env_refuses_invalid_move_without_changing_state():
    env = BlocksEnv(
        instance=BlocksInstance(id="t", initial=[["A", "B"], ["C"]], goal=[["A", "B", "C"]], optimal=1)
    )
    env.reset(seed=0)
    r = env.step("ACTION: move A C")
    assert isinstance(r.error, RuleViolation) and "not clear" in r.error.reason
    assert env.state(0)["stacks"] == [["A", "B"], ["C"]]
    r = env.step("ACTION: put it somewhere")
    assert isinstance(r.error, ParseError)
    _, obs = env.observe()
    assert "could not be parsed" in obs
    r = env.step("ACTION: move C B")
    assert r.done and env.rewards[0] == 1.0 and env.info["success"]
    assert env.info["errors"][0] == {"parse": 1, "rule": 1, "defaults": 0}
    assert env.info["invalid_moves"] == 1


def test_score_is_optimal_over_moves_used_and_zero_on_failure():
    sussman = BlocksInstance(id="sussman", initial=[["A", "C"], ["B"]], goal=[["C", "B", "A"]], optimal=3)
    env = BlocksEnv(instance=sussman)
    env.reset(seed=0)
    for move in ["move C B", "move C table", "move B C", "move A B"]:  # C detours via B
        assert env.step(f"ACTION: {move}").error is None
    assert env.done and env.info["moves_used"] == 4
    assert env.rewards[0] == pytest.approx(3 / 4)
    assert env.info["excess_moves"] == 1

    env = BlocksEnv(instance=sussman, move_limit=2)
    env.reset(seed=0)
    env.step("ACTION: move C table")
    env.step("ACTION: move B C")
    assert env.done and not env.info["success"] and env.rewards[0] == 0.0


def test_error_budget_plays_pass_and_episode_continues():
    env = BlocksEnv(blocks=3, error_budget=1)
    env.reset(seed=1)
    env.step("nonsense")
    r = env.step("more nonsense")
    assert r.defaulted and r.action == "pass" and env.info["errors"][0]["defaults"] == 1


# ---------------------------------------------------------------- env-level properties


def test_registered_variants_and_instance_generation():
    env = make("blocks-v0")
    env.reset(seed=3)
    assert len({b for s in env.state(0)["stacks"] for b in s}) == 5
    inst = generate(4, random.Random(1))
    assert inst.initial_stacks != inst.goal_stacks and inst.optimal >= 1
    assert make("blocks-small-v0", instance=7).reset(seed=0) is None


def test_same_seed_same_episode():
    def transcript(seed, agent_cls):
        env = play(BlocksEnv(blocks=5), [agent_cls(seed=seed)], seed)
        return [m.to_dict() for m in env.transcript()], env.rewards

    assert transcript(11, BlocksPlanner) == transcript(11, BlocksPlanner)
    assert transcript(11, BlocksRandom) == transcript(11, BlocksRandom)
    assert transcript(11, BlocksPlanner) != transcript(12, BlocksPlanner)


def test_fuzzed_actions_never_crash_and_episodes_end():
    for seed in range(15):
        env = play(BlocksEnv(blocks=4), [RandomStringAgent(seed=seed)], seed)
        assert env.done
        errors = env.info["errors"][0]
        assert errors["parse"] + errors["rule"] > 0


def test_planner_beats_random_significantly():
    n = 40
    planner = [play(BlocksEnv(blocks=5), [BlocksPlanner(seed=s)], s).info["success"] for s in range(n)]
    rand = [play(BlocksEnv(blocks=5), [BlocksRandom(seed=s)], s).info["success"] for s in range(n)]
    assert sum(planner) == n
    _, p = fisher_exact([[sum(planner), n - sum(planner)], [sum(rand), n - sum(rand)]], alternative="greater")
    assert p < 1e-6


def test_observation_is_the_whole_state_not_a_growing_log():
    """Full information: each prompt is the state (stacks, goal, moves used, last move), marked
    complete, so LLM agents keep the rules and this one observation instead of every earlier move."""
    sussman = BlocksInstance(id="sussman", initial=[["A", "C"], ["B"]], goal=[["C", "B", "A"]], optimal=3)
    env = BlocksEnv(instance=sussman)
    env.reset(seed=0)
    _, first = env.observe()
    assert first.complete and "Your last move" not in first
    env.step("ACTION: move C table")
    env.step("ACTION: move B C")
    _, obs = env.observe()
    assert obs.complete
    assert "Moves used: 2 of" in obs and "Your last move: move B C." in obs
    assert "move C table" not in obs  # older moves are not replayed: the stacks show their effect
    assert len(obs) < len(first) + 40
