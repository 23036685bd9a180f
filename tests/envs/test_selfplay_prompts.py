"""Short self-play prompts: Perudo's complete observation (all a player needs, in one block) and
the history hook (`Observation.complete`): an LLM agent keeps the rules and the latest observation,
plus the turn's refused replies and short re-prompts."""

from __future__ import annotations

import pytest

from selflab.envs import make
from selflab.envs.games.perudo import PerudoEnv
from selflab.envs.llm_agent import LLMAgent
from selflab.models.types import Completion

DICE = [[2, 2, 3], [1, 4, 5], [3, 6, 6]]


def _table() -> PerudoEnv:
    env = PerudoEnv(players=3, dice=3, initial_dice=DICE, max_turns=50)
    env.reset(seed=0)
    return env


def test_complete_observation_holds_what_a_player_needs() -> None:
    env = _table()
    player, obs = env.observe()
    assert player == 0 and obs.complete
    assert "Your dice: 2 2 3." in obs and "You are Player 0" in obs
    assert "Dice left: Player 0 has 3, Player 1 has 3, Player 2 has 3 (9 in play)." in obs
    assert "No bid yet this round" in obs and "Current bid" not in obs
    assert "Turn limit" not in obs  # 50 moves left: far from binding
    assert "ACTION: bid <quantity> <face>" in obs  # the action format, every turn

    env.step("bid 2 6")
    env.step("bid 3 6")
    player, obs = env.observe()
    assert player == 2 and "Your dice: 3 6 6." in obs
    assert "Current bid: at least 3 dice show 6 (Player 1)." in obs
    assert "Earlier bids this round: Player 0 bid 2 6." in obs  # the current bid is not repeated
    for hand in DICE[:2]:  # the others' dice never reach this player
        assert " ".join(map(str, hand)) not in obs

    env.step("challenge")  # two sixes: the bid was false, Player 1 loses a die and starts round 2
    player, obs = env.observe()
    assert player == 1 and obs.complete and env.round == 2
    assert "Round 2. Your dice: " in obs and "Player 1 has 2" in obs and "(8 in play)" in obs
    assert "No bid yet this round" in obs and "Earlier bids" not in obs


def test_observation_counts_down_only_near_the_turn_limit() -> None:
    env = PerudoEnv(players=2, dice=5, max_turns=6)
    env.reset(seed=0)
    _, obs = env.observe()
    assert "Turn limit" not in obs  # 6 moves left, more than two rounds of moves
    env.step("bid 1 2")
    env.step("bid 1 3")
    _, obs = env.observe()
    assert "Turn limit in 4 moves." in obs


def test_observation_shares_its_start_with_other_games_in_the_same_public_state() -> None:
    """No line names a past only one game has: two games that reach the same dice left, round,
    own dice and bids give the same observation, so the prefix cache serves one to the other."""
    a = PerudoEnv(players=2, dice=1, initial_dice=[[6], [2]])
    b = PerudoEnv(players=2, dice=1, initial_dice=[[6], [5]])
    for env, (opening, raise_) in [(a, ("bid 1 6", "bid 2 6")), (b, ("bid 1 5", "bid 2 6"))]:
        env.reset(seed=0)
        env.step(opening)
        env.step(raise_)
    _, obs_a = a.observe()
    _, obs_b = b.observe()
    shared = obs_a.split("Earlier bids")[0]
    assert obs_b.startswith(shared) and "Current bid: at least 2 dice show 6 (Player 1)." in shared


def test_observation_marks_players_out() -> None:
    env = PerudoEnv(players=3, dice=1, initial_dice=[[6], [2], [3]])
    env.reset(seed=0)
    env.step("bid 1 6")
    env.step("bid 2 6")
    env.step("challenge")  # one six: Player 1's bid was false, Player 1 is out
    _, obs = env.observe()
    assert "Player 1 is out" in obs


def test_rules_are_short_and_keep_every_rule() -> None:
    for env_id, phrase in [("perudo-v0", "ones are not wild"), ("perudo-wild-v0", "Ones are WILD")]:
        rules = make(env_id).rules
        for needed in (phrase, "raise", "challenge", "loses a die", "starts the next round", "out",
                       "turn limit (300 moves", "default move", "ACTION: bid Q F", "dice in play"):  # fmt: skip
            assert needed in rules, (env_id, needed)
        assert len(rules) < 900, "the rules are read on every move"


def _agent(spec: str, **kw) -> LLMAgent:
    from selflab.models import load_model

    return LLMAgent(load_model(spec), seed=0, **kw)


def test_llm_agent_keeps_only_the_latest_complete_observation(tiny_model_spec: str) -> None:
    env = make("perudo-small-v0")
    env.reset(seed=0)
    agents = [_agent(tiny_model_spec, max_new_tokens=8), _agent(tiny_model_spec, max_new_tokens=8)]
    for seat, a in enumerate(agents):
        a.begin(env.rules, seat)
    lengths = []
    for _ in range(6):
        player, obs = env.observe()
        req = agents[player].prepare(obs)
        assert [m.role for m in req.messages] == ["system", "user"], "history trimmed by the game"
        assert req.messages[1].content == str(obs) and req.messages[0].content.endswith(env.rules.strip())
        lengths.append(agents[player]._count(req.messages[0].content + req.messages[1].content))
        move = "challenge" if env.bid is not None and env.bid[0] >= 2 else f"bid {len(env.round_bids) + 1} 6"
        agents[player].consume(Completion(text=f"ACTION: {move}"))
        env.step(move)
        if env.done:
            break
    assert max(lengths) < 420, lengths  # was ~780 tokens with the long rules and the full history


def test_refused_move_reprompt_is_short_and_resets_on_the_next_turn(tiny_model_spec: str) -> None:
    env = make("perudo-small-v0")
    env.reset(seed=0)
    agent = _agent(tiny_model_spec, max_new_tokens=8)
    agent.begin(env.rules, 0)
    _, obs = env.observe()
    agent.prepare(obs)
    env.step(agent.consume(Completion(text="ACTION: bid 9 9")))  # more dice than in play: refused
    _, obs = env.observe()
    assert obs.error is not None and obs.complete
    req = agent.prepare(obs)
    roles = [m.role for m in req.messages]
    assert roles == ["system", "user", "assistant", "user"], "the turn's observation, reply, re-prompt"
    reprompt = req.messages[-1].content
    assert reprompt.startswith("Your action breaks the rules:") and "Dice left" not in reprompt
    assert agent._count(reprompt) < 80  # the reason, attempts left and the action format
    env.step(agent.consume(Completion(text="ACTION: bid 1 2")))
    env.step("challenge")  # the other seat
    player, obs = env.observe()
    if player == 0 and not env.done:
        req = agent.prepare(obs)
        assert [m.role for m in req.messages] == ["system", "user"]


def test_incremental_observations_keep_the_history(tiny_model_spec: str) -> None:
    """A game without `complete_observations` keeps the old behaviour: the history grows."""
    env = make("perudo-small-v0")
    env.complete_observations = False  # type: ignore[misc]  # instance override, for this test
    env.reset(seed=0)
    agent = _agent(tiny_model_spec, max_new_tokens=8)
    agent.begin(env.rules, 0)
    _, obs = env.observe()
    assert not obs.complete and "[Game]" in obs  # the message log is in the text
    agent.prepare(obs)
    env.step(agent.consume(Completion(text="ACTION: bid 1 2")))
    env.step("bid 1 3")
    _, obs = env.observe()
    req = agent.prepare(obs)
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "user"]


@pytest.mark.integration
def test_embedded_model_plays_perudo_small_with_no_invalid_move() -> None:
    """The game self-play loop's setting: perudo-small-v0, 1024-token context, 24 new tokens,
    constrained moves. Every move is legal and every prompt is the short one."""
    from selflab.envs.runner import EpisodeSpec, play

    llm = "llm:smollm2-135m"
    specs = [EpisodeSpec(f"e{i}", "perudo-small-v0", [llm, llm], seed=i) for i in range(2)]
    options = {"llm": {"max_new_tokens": 24, "context_tokens": 1024, "temperature": 0.8}}
    result = play(specs, agent_options=options)
    steps = [s for e in result.episodes for s in e.steps]
    assert steps and all(e.outcome for e in result.episodes)
    assert all(s.error is None for s in steps), [s.raw_output for s in steps if s.error]
    assert all(len(s.prompt) == 2 for s in steps)
    assert max(s.prompt_tokens for s in steps) < 512  # ~780 on average before


def test_runner_sends_one_leader_per_new_system_prompt_first() -> None:
    """A batch of fresh games shares the rules: one request goes first so the others can read
    the rules from the model's prefix cache; afterwards batches go whole."""
    from selflab.envs.runner import _leaders
    from selflab.models.types import GenerationRequest, Message

    def req(system: str, user: str = "u") -> GenerationRequest:
        return GenerationRequest(
            messages=(Message(role="system", content=system), Message(role="user", content=user))
        )

    seen: set[str] = set()
    batch = [
        req("rules A"),
        req("rules A", "v"),
        req("rules B"),
        req("rules A", "w"),
        req("rules C"),
        req("rules C"),
    ]
    assert _leaders(batch, seen) == [0, 4]  # B appears once: nothing to share
    assert seen == {"rules A", "rules B", "rules C"}
    assert _leaders(batch, seen) == []
    assert _leaders([GenerationRequest.chat("no system"), GenerationRequest.chat("no system")], set()) == []


def test_play_sends_the_first_tick_whole_to_an_engine_that_shares_starts(
    tiny_model_spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our engine computes the rules shared by a fresh batch once by itself: no leader call. A model
    without that (a remote server) still gets one leader first."""
    from selflab.envs.runner import EpisodeSpec, play
    from selflab.models.hf import HFModel

    llm = f"llm:{tiny_model_spec}"
    specs = [EpisodeSpec(f"e{i}", "perudo-small-v0", [llm, "scripted"], seed=i) for i in range(4)]
    result = play(specs, agent_options={"llm": {"max_new_tokens": 8}})
    sizes = result.stats.batch_sizes
    assert sizes[0] == 4 and max(sizes) == 4
    assert result.stats.requests == sum(sizes) and all(e.outcome for e in result.episodes)
    monkeypatch.setattr(HFModel, "shares_prompt_starts", False)
    led = play(specs, agent_options={"llm": {"max_new_tokens": 8}})
    assert led.stats.batch_sizes[:2] == [1, 3]  # the leader, then the rest of the first tick
