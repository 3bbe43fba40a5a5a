"""Zero-shot evaluation: sequence scoring backends and the ``EVAL_TASKS`` registry.

Importing this package registers every task: ``blimp``, ``blimp_filtered``,
``blimp_supplement``, ``blimp_fast``, ``supplement_fast`` (:mod:`thrifty.eval.blimp`),
``entity_tracking``, ``ewok``, ``reading`` and ``wug``. See :mod:`thrifty.eval.tasks` for the
result schema.
"""

from thrifty.eval import blimp, closed_book_qa, entity_tracking, ewok, reading, wug  # noqa: F401
from thrifty.eval.minimal_pairs import (
    evaluate_minimal_pairs,
    evaluate_pairs,
    format_table,
    read_pairs,
)
from thrifty.eval.scoring import (
    BACKENDS,
    VARIANTS,
    score_continuations,
    score_packed,
    score_sentences,
)
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task, task_folder, task_folders, task_names

__all__ = [
    "BACKENDS",
    "EVAL_TASKS",
    "VARIANTS",
    "Scorer",
    "Task",
    "evaluate_minimal_pairs",
    "evaluate_pairs",
    "format_table",
    "read_pairs",
    "score_continuations",
    "score_packed",
    "score_sentences",
    "task_folder",
    "task_folders",
    "task_names",
]
