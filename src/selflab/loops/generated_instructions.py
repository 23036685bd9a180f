"""Generated data on instructions (in the style of AutoIF, Dong et al. 2024): the model writes its
own writing requests, code attaches a checkable constraint to each, the model answers them, and it
learns from the answers the constraint's verifier passes. No prompt set: the fixed text is three
format demonstrations, the constraint templates and a list of training-side topic words.

It differs from `generated-data` (self-written math questions labelled by majority vote) in where
the label comes from: a 135M model's majority is right on about 1 in 11 of its own questions, while
a constraint is checked by code. It differs from `verified-sft` (the main job) in where the prompts
come from: the main job's are drawn from a template; these are the model's.

Per iteration:
  propose  `requests` model-written requests (one batched, seeded call; request i is about a
           training-side topic and gets constraint kind i mod len(kinds)); each is parsed
           defensively and rejected, with its reason counted, when it has no text, is too short or
           long, copies a demonstration, repeats another, or names a held-out topic (a leak)
  solve    `samples` sampled answers per valid request (one batched call)
  verify   the attached constraint's code verifier
  build    SFT on verified answers (at most `keep_per_request` distinct ones per request)
  train    TRL SFT -> checkpoints/iter-<i>
  evaluate greedy answers to the held-out instruction tasks (template prompts on held-out topics,
           never proposed or trained on), the untrained arithmetic control, answer length
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field, field_validator

from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.evaluation import Evaluation, Length, verified_panel
from selflab.loops.measures import Answer, sample_answers_on, verified_examples, verify_answers
from selflab.models.types import GenerationRequest, SamplingParams, user
from selflab.tasks import Task
from selflab.tasks.instructions import CONSTRAINT_KINDS, attach_constraint, topic_pool
from selflab.tasks.splits import TopicPool, entity_heldout, split_tasks
from selflab.training import TrainConfig, save_parquet, sft_rows

DEMONSTRATIONS = (
    "REQUEST: Describe how umbrellas keep people dry in a storm.",
    "REQUEST: Explain why farmers change the crops they grow each year.",
    "REQUEST: Write a short text about the first telephones.",
)
PROPOSE_TEMPLATE = (
    "Write one new request that asks for a short text about {topic}. "
    "Ask about one particular side of {topic}. Do not write the text itself.\n"
    "Examples:\n{examples}\n"
    "Reply with one line that starts with REQUEST:"
)
MAIN_JOB_KINDS = ("include_keywords", "max_words", "no_commas", "ends_with", "lowercase", "json_keys")


class GeneratedInstructionsConfig(LoopConfig):
    """Defaults: the piloted config of `configs/generated_instructions.yaml`."""

    iterations: int = Field(1, ge=1, le=100)
    requests: int = Field(96, ge=1, description="writing requests the model proposes per iteration")
    propose_temperature: float = Field(0.9, ge=0.0)
    propose_max_new_tokens: int = Field(40, ge=8)
    constraint_kinds: list[str] = Field(
        default_factory=lambda: list(MAIN_JOB_KINDS),
        description="constraints code attaches (the main job's six)",
    )
    samples: int = Field(4, ge=1, description="answers per request")
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(80, ge=8)
    keep_per_request: int = Field(2, ge=1)
    drop_truncated: bool = True
    eval_tasks: int = Field(96, ge=2, description="held-out instruction tasks (held-out topics)")
    control_tasks: int = Field(20, ge=0, description="held-out arithmetic (untrained family)")
    heldout_topic_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    topics: TopicPool = "all"
    eval_max_new_tokens: int = Field(80, ge=8)
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            lora=True, learning_rate=2e-4, epochs=3, batch_size=8, max_length=512
        )
    )

    @field_validator("constraint_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        bad = [k for k in kinds if k not in CONSTRAINT_KINDS]
        if bad or not kinds:
            raise ValueError(
                f"unknown or no constraint kinds {bad}: choose from {', '.join(CONSTRAINT_KINDS)}"
            )
        return kinds


class Request(BaseModel):
    """One model-written request, what the filters made of it, and the task built from it."""

    id: str
    topic: str
    kind: str
    instruction: str
    raw: str
    request: str = ""
    valid: bool = False
    reason: str = ""
    task: Task | None = None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _stems(topic: str) -> list[str]:
    """The words a mention of `topic` starts with ("volcanoes" -> "volcano", "the moon" -> "moon")."""
    out = []
    for w in topic.lower().split():
        if w in {"the", "a", "an", "of"}:
            continue
        out.append(re.sub(r"(es|s)$", "", w) if len(w) > 4 else w)
    return out


def parse_request(raw: str, banned_topics: Sequence[str], seen: set[str]) -> tuple[str, str]:
    """(request, "ok") or ("", reason). The request is the text after `REQUEST:` (else the first
    non-empty line), one line, quotes and markdown stripped. `banned_topics` are the held-out
    topics: a request that mentions one (any word starting with one of its stems) is a leak."""
    text = raw.replace("**", "").strip()
    m = re.search(r"request\s*[:\-][ \t]*(.*)", text, re.I)
    line = m.group(1) if m else next((ln for ln in text.splitlines() if ln.strip()), "")
    request = line.split("\n")[0].strip().strip('"').strip()
    n = len(request.split())
    if not request or not re.search(r"[A-Za-z]", request):
        return "", "empty"
    if n < 4:
        return "", "too short"
    if n > 40:
        return "", "too long"
    key = _norm(request)
    if any(key == _norm(d.removeprefix("REQUEST:")) for d in DEMONSTRATIONS):
        return "", "copies a demonstration"
    if key in seen:
        return "", "duplicate"
    words = key.split()
    for topic in banned_topics:
        if any(w.startswith(s) for s in _stems(topic) for w in words):
            return "", "names a held-out topic"
    seen.add(key)
    return request, "ok"


@register_loop
class GeneratedInstructionsLoop(Loop):
    name = "generated-instructions"
    description = "generated data on instructions: own requests, code-checked constraints (AutoIF-style)"
    Config = GeneratedInstructionsConfig
    baseline_stages = ("evaluate",)
    stages = ("propose", "solve", "verify", "build", "train", "evaluate")
    config: GeneratedInstructionsConfig

    def topics_on(self, heldout: bool) -> list[str]:
        f = self.config.heldout_topic_fraction
        return [t for t in topic_pool(self.config.topics) if entity_heldout(t, f) == heldout]

    def requests_for(self, iteration: int) -> list[tuple[str, str, str]]:
        """(topic, constraint kind, proposer instruction) of each request: a pure function of the config."""
        c = self.config
        rng = random.Random(self.seed_for("requests", iteration))
        topics = self.topics_on(heldout=False)
        out = []
        for i in range(c.requests):
            topic = rng.choice(topics)
            examples = "\n".join(rng.sample(DEMONSTRATIONS, len(DEMONSTRATIONS)))
            out.append((topic, c.constraint_kinds[i % len(c.constraint_kinds)],
                        PROPOSE_TEMPLATE.format(topic=topic, examples=examples)))  # fmt: skip
        return out

    def eval_tasks(self) -> list[Task]:
        c = self.config
        return split_tasks(
            "instructions", c.eval_tasks, self.seed_for("eval"), True, c.heldout_topic_fraction,
            c.constraint_kinds, c.topics,
        )  # fmt: skip

    def control_tasks(self) -> list[Task]:
        c = self.config
        if not c.control_tasks:
            return []
        return split_tasks("arithmetic", c.control_tasks, self.seed_for("control"), True, 0.5)

    def train_tasks(self, iteration: int) -> list[Task]:
        return [r.task for r in self.read(iteration, "propose", Request) if r.valid and r.task is not None]

    def stage_propose(self, ctx: StageContext) -> None:
        c = self.config
        plan = self.requests_for(ctx.iteration)
        base = self.seed_for("propose", ctx.iteration)
        sampling = SamplingParams(
            temperature=c.propose_temperature,
            top_p=c.top_p,
            max_new_tokens=c.propose_max_new_tokens,
            stop=("\n",),
        )
        reqs = [
            GenerationRequest(
                messages=(user(instr),),
                sampling=sampling if sampling.greedy else sampling.model_copy(update={"seed": base + i}),
                assistant_prefix="REQUEST:",
            )
            for i, (_, _, instr) in enumerate(plan)
        ]
        outs = self.load(self.policy_spec(ctx.iteration)).generate(reqs)
        banned, seen = self.topics_on(heldout=True), set[str]()
        reasons: Counter[str] = Counter()
        for i, ((topic, kind, instr), o) in enumerate(zip(plan, outs, strict=True)):
            raw = "" if o.error else "REQUEST:" + o.text
            request, reason = parse_request(raw, banned, seen) if not o.error else ("", f"error: {o.error}")
            rid = f"gen{ctx.iteration}-{i}"
            task = attach_constraint(rid, request, kind, topic, base + i) if request else None
            ctx.out.append(Request(id=rid, topic=topic, kind=kind, instruction=instr, raw=raw, request=request,
                                   valid=task is not None, reason=reason, task=task))  # fmt: skip
            reasons[reason] += 1
        ctx.info.update(requests=len(plan), valid=reasons.pop("ok", 0))
        ctx.info.update({f"rejected_{k.replace(' ', '_')}": v for k, v in sorted(reasons.items())})

    def stage_solve(self, ctx: StageContext) -> None:
        c = self.config
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        answers = sample_answers_on(
            self.executor, self.policy_spec(ctx.iteration), self.train_tasks(ctx.iteration), c.samples,
            sampling, self.seed_for("solve", ctx.iteration), load=self.load,
        )  # fmt: skip
        ctx.out.extend(answers)
        ctx.info.update(answers=len(answers), tokens=sum(a.completion_tokens for a in answers))

    def stage_verify(self, ctx: StageContext) -> None:
        answers = verify_answers(self.train_tasks(ctx.iteration), self.read(ctx.iteration, "solve", Answer))
        ctx.out.extend(answers)
        ok = sum(1 for a in answers if a.verified)
        ctx.info.update(
            verified=ok, requests_with_a_verified_answer=len({a.task_id for a in answers if a.verified})
        )
        ctx.info["train_pass_rate"] = round(ok / max(1, len(answers)), 4)

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        examples = verified_examples(
            self.read(ctx.iteration, "verify", Answer), c.keep_per_request, c.drop_truncated
        )
        random.Random(self.seed_for("build", ctx.iteration)).shuffle(examples)
        ctx.out.extend(examples)
        if examples:
            save_parquet(sft_rows(examples), ctx.data_path("sft"))
        ctx.info["examples"] = len(examples)

    def stage_train(self, ctx: StageContext) -> None:
        self.train_or_carry(ctx, "sft", ctx.data_path("sft"), self.config.train)

    def evaluation(self) -> Evaluation:
        c = self.config
        sets, scorers = verified_panel(
            self.eval_tasks(),
            self.control_tasks(),
            "control_arithmetic_accuracy",
            "verifier pass rate, greedy, template instructions on held-out topics (never proposed)",
        )
        scorers.append(Length("heldout"))
        greedy = SamplingParams(temperature=0.0, max_new_tokens=c.eval_max_new_tokens)
        return Evaluation("generated-instructions", sets, greedy, scorers)

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        result = self.run_evaluation(ctx, self.evaluation(), spec)
        info: dict[str, float | int | str | None] = {}
        if ctx.iteration > 0:
            keys = ("valid", "train_pass_rate", "examples", "steps", "train_loss")
            info.update(self.stage_infos(ctx.iteration, keys))
        ctx.info["heldout_pass"] = sum(1 for a in result.answers["heldout"] if a.verified)
        self.meter.record(ctx.iteration, spec, result.measurements, info=info)
