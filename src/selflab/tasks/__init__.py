"""Verifiable tasks: prompts whose answers code can check (arithmetic, word problems, facts from a
shipped country table, IFEval-style instructions). Used by the judge benchmark as ground truth, by
training loops as a truth meter, and by probes as labelled statements."""

from selflab.tasks.arithmetic import arithmetic_tasks, word_problem_tasks
from selflab.tasks.facts import Country, country, fact_statements, fact_tasks, load_fact_table
from selflab.tasks.instructions import instruction_tasks
from selflab.tasks.types import Task, Verification, check
from selflab.tasks.verifiers import VERIFIERS, detect_language, run_verifier

__all__ = [
    "VERIFIERS",
    "Country",
    "Task",
    "Verification",
    "arithmetic_tasks",
    "check",
    "country",
    "detect_language",
    "fact_statements",
    "fact_tasks",
    "instruction_tasks",
    "load_fact_table",
    "run_verifier",
    "word_problem_tasks",
]
