"""Runner, tournaments, trajectories: scripted episodes, LLM batching on the tiny model, resume,
export, seat rotation, and the scripted baselines beating random with significance."""

from __future__ import annotations

import pytest

from selflab.envs.agents import RandomAgent
from selflab.envs.protocol import Observation
from selflab.envs.registry import make_agent
from selflab.envs.runner import EpisodeSpec, play, schedule
from selflab.envs.tournament import (
    binomial_p,
    elo,
    head_to_head,
    round_robin,
    summarize,
    trueskill_ratings,
    wilson,
)
from selflab.envs.trajectories import EpisodeRecord, to_dpo, to_sft


def test_schedule_rotates_seats_and_seeds() -> None:
    specs = schedule("perudo-v0", ["a", "b", "c"], 6, seed=10)
    assert [s.agents for s in specs[:3]] == [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]]
    assert [s.seed for s in specs] == list(range(10, 16)) and specs[0].env_kwargs == {"players": 3}


def test_scripted_run_is_reproducible_and_recorded(tmp_path) -> None:
    from selflab.runs import RunDir

    specs = schedule("perudo-v0", ["scripted", "random"], 12, seed=4)
    a = play(specs, concurrency=5)
    b = play(specs, concurrency=64)
    assert [e.model_dump(exclude={"duration_s"}) for e in a.episodes] == [
        e.model_dump(exclude={"duration_s"}) for e in b.episodes
    ]
    run = RunDir.create(tmp_path / "run", config={"x": 1}, seed=4)
    first = play(specs[:5], run=run)
    again = play(specs, run=run)  # resume: the first five are not replayed
    assert first.stats.episodes == 5 and again.stats.episodes == 7 and len(again.episodes) == 12
    stored = run.records("episodes").read(EpisodeRecord)
    assert [e.episode_id for e in stored] == [s.episode_id for s in specs]
    ep = stored[0]
    assert ep.steps and all(s.observation for s in ep.steps) and ep.transcript and ep.rules


class _Sloppy(RandomAgent):
    """A malformed reply, then a legal move, every turn: the refused-then-accepted pairs the
    "format" export is for (the fuzzer's near misses are all refused by a strict parser)."""

    name = "sloppy"

    def act(self, observation: Observation) -> str:
        self.sent = not getattr(self, "sent", False)
        return "ACTION: bid, maybe?" if self.sent else super().act(observation)


def test_sft_and_dpo_export() -> None:
    specs = [EpisodeSpec(f"e{i}", "perudo-small-v0", ["scripted", "sloppy"], seed=i) for i in range(6)]
    eps = play(
        specs, agent_factory=lambda e: [make_agent(e.env_id, "scripted", seed=e.seed), _Sloppy(seed=e.seed)]
    ).episodes
    sft = to_sft(eps)
    assert sft and all(r["messages"][-1]["role"] == "assistant" for r in sft)
    assert all(r["player"] in next(e for e in eps if e.episode_id == r["episode_id"]).winners for r in sft)
    dpo = to_dpo(eps, kinds=("format",))
    assert dpo and all(r["chosen"] != r["rejected"] and r["kind"] == "format" for r in dpo)
    # Outcome pairs need the same observation in a won and a lost episode: same seeds, two tables.
    twins = [EpisodeSpec(f"t{i}-{k}", "perudo-small-v0", ag, seed=7) for i in range(1)
             for k, ag in enumerate([["scripted", "random"], ["random", "scripted"]])]  # fmt: skip
    out = to_dpo(play(twins).episodes, kinds=("outcome",))
    assert all(r["kind"] == "outcome" for r in out)


def test_llm_agents_are_batched_on_tiny_model(tiny_model_spec: str) -> None:
    llm = f"llm:{tiny_model_spec}"
    specs = [
        EpisodeSpec(f"e{i}", "perudo-small-v0", [llm, "scripted"], seed=i, env_kwargs={"dice": 1})
        for i in range(4)
    ]
    result = play(specs, agent_options={"llm": {"max_new_tokens": 4, "temperature": 1.0}})
    st = result.stats
    assert st.episodes == 4 and all(e.winners for e in result.episodes)
    assert st.requests > st.model_calls, "moves of concurrent episodes must share model calls"
    assert max(st.batch_sizes) == 4
    steps = [s for e in result.episodes for s in e.steps if s.agent == llm]
    assert steps and all(s.prompt and s.prompt[0]["role"] == "system" for s in steps)
    assert all(s.raw_output is not None for s in steps)
    # A random tiny model produces garbage: parse errors are recorded and defaults keep games going.
    assert sum(e.errors[0]["parse"] + e.errors[0]["rule"] for e in result.episodes if e.agents[0] == llm) > 0


def test_llm_agent_prompt_history_and_truncation(tiny_model_spec: str) -> None:
    from selflab.envs import make
    from selflab.envs.llm_agent import LLMAgent
    from selflab.models import load_model
    from selflab.models.types import Completion

    env = make("perudo-small-v0")
    env.complete_observations = False  # the incremental path (a game without the history hook)
    env.reset(seed=0)
    agent = LLMAgent(load_model(tiny_model_spec), seed=0, context_tokens=500, max_new_tokens=16)
    agent.begin(env.rules, 0)
    for _ in range(6):
        _, obs = env.observe()
        req = agent.prepare(obs)
        action = agent.consume(Completion(text="thinking...\nACTION: bid 9 9"))
        assert action == "bid 9 9"
        env.step(action)  # rule violation: the next observation carries the reason
        if env.observe()[0] != 0:
            break
    assert req.messages[0].role == "system" and "PERUDO" in req.messages[0].content
    assert agent.dropped_messages > 0, "a 500-token budget must drop old turns"
    assert "breaks the rules" in req.messages[-1].content


def test_stats_helpers() -> None:
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    assert binomial_p(10, 10) == pytest.approx(0.5**10)
    eps = [
        EpisodeRecord(
            episode_id=str(i),
            env_id="x-v0",
            agents=["a", "b"],
            rewards={0: 1.0, 1: 0.0},
            winners=[0],
            ranks={0: 0, 1: 1},
        )  # fmt: skip
        for i in range(10)
    ]
    ratings = elo(eps)
    assert ratings["a"] > 1500 > ratings["b"]
    ts = trueskill_ratings(eps)
    assert ts["a"][0] > ts["b"][0]
    h = head_to_head(eps)[("a", "b")]
    assert (h.a_wins, h.b_wins) == (10, 0) and h.p_value < 0.01
    assert summarize(eps)["a"].win_rate == 1.0


@pytest.mark.parametrize("env_id", ["perudo-v0", "perudo-wild-v0"])
def test_perudo_scripted_beats_random_significantly(env_id: str) -> None:
    result = round_robin(env_id, ["scripted", "random"], 200, seed=1)
    h = result.pairs[("random", "scripted")]
    assert h.b_wins > h.a_wins and binomial_p(h.b_wins, h.decided) < 0.01
    assert result.elo["scripted"] > result.elo["random"]


def test_spy_scripted_beats_random_significantly() -> None:
    # Same opponents, different spy: the scripted spy survives more often than the random spy;
    # and scripted citizens catch a random spy more often than random citizens do.
    def spy_wins(spy: str, citizens: str) -> int:
        specs = [
            EpisodeSpec(f"e{i}", "spy-v0", [spy] + [citizens] * 3, seed=i, env_kwargs={"spy": 0})
            for i in range(200)
        ]
        return sum(1 for e in play(specs).episodes if 0 in e.winners)

    from scipy.stats import fisher_exact

    a, b = spy_wins("scripted", "random"), spy_wins("random", "random")
    assert a > b and fisher_exact([[a, 200 - a], [b, 200 - b]], alternative="greater").pvalue < 0.01
    c = spy_wins("random", "scripted")
    assert c < b and fisher_exact([[b, 200 - b], [c, 200 - c]], alternative="greater").pvalue < 0.01
