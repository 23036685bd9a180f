"""Verifiable tasks: prompts whose answers code can check (arithmetic, word problems, facts from a
shipped country table, IFEval-style instructions). Used by the judge benchmark as ground truth, by
training loops as a truth meter, and by probes as labelled statements."""

from selflab.tasks.arithmetic import arithmetic_tasks, word_problem_tasks
from selflab.tasks.facts import Country, country, fact_statements, fact_tasks, load_fact_table
from selflab.tasks.instructions import instruction_task, instruction_tasks
from selflab.tasks.splits import FAMILIES, FamilyName, entities, family_tasks, is_heldout, side, split_tasks
from selflab.tasks.types import Task, Verification, check
from selflab.tasks.verifiers import VERIFIERS, detect_language, run_verifier

__all__ = [
    "FAMILIES",
    "VERIFIERS",
    "FamilyName",
    "Country",
    "Task",
    "Verification",
    "arithmetic_tasks",
    "check",
    "country",
    "detect_language",
    "entities",
    "family_tasks",
    "fact_statements",
    "fact_tasks",
    "instruction_task",
    "instruction_tasks",
    "is_heldout",
    "load_fact_table",
    "run_verifier",
    "side",
    "split_tasks",
    "word_problem_tasks",
]
