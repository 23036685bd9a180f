"""Multi-agent text game environments: a pull-based Env protocol, a registry of versioned
variants, scripted/random/LLM agents, a batched runner, tournaments and trajectory export.

    from selflab.envs import make, make_agent
    env = make("perudo-v0", players=4, dice=5)
    env.reset(seed=0)
"""

from selflab.envs.agents import Agent, BaseAgent, BatchableAgent, FixedAgent, RandomAgent, ScriptedAgent
from selflab.envs.core import (
    GAME,
    ActionError,
    ChannelMessage,
    Env,
    Observation,
    ParseError,
    RuleViolation,
    StepResult,
    TextEnv,
    extract_action,
)
from selflab.envs.registry import EnvSpec, list_envs, make, make_agent, register, spec

__all__ = [
    "GAME",
    "ActionError",
    "Agent",
    "BaseAgent",
    "BatchableAgent",
    "ChannelMessage",
    "Env",
    "EnvSpec",
    "FixedAgent",
    "Observation",
    "ParseError",
    "RandomAgent",
    "RuleViolation",
    "ScriptedAgent",
    "StepResult",
    "TextEnv",
    "extract_action",
    "list_envs",
    "make",
    "make_agent",
    "register",
    "spec",
]
