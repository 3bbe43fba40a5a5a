"""The minimal-pair members of ``EVAL_TASKS``: BLiMP, BabyLM's filtered BLiMP, the BLiMP
supplement, and the fast copies of both for intermediate checkpoints.

All read ``sentence_good`` / ``sentence_bad`` records and count an item correct iff the good
sentence scores strictly higher (:mod:`thrifty.eval.minimal_pairs`). The supplement has no
``UID`` field: the file name is the paradigm, as in the 2025 BabyLM pipeline.

Dialogue items (``qa_congruence_*``, ``turn_taking``: ``"A: What did you sell?\\nB: A chair."``)
are scored as *whole sentences*, context line included, never as a continuation given the shared
question: ``babylm/evaluation-pipeline-2025`` decodes every BLiMP-style record with no prefix and
the full sentence as the completion (``read_files.decode_blimp``). Under ``causal`` scoring a
shared question adds exactly the same log-prob to both sentences, so this equals scoring the
answer given the question; under ``mlm``/``mntp`` the question's tokens are scored with the
answer in view and take part. In ``turn_taking`` good and bad differ *in the question*
("Should you quit?" vs "Should she quit?" before the same answer), so a shared-prefix reading
would not even exist there.
"""

from __future__ import annotations

from pathlib import Path

from thrifty.eval.minimal_pairs import evaluate_pairs, read_pairs
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task


class MinimalPairTask(Task):
    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        pairs = read_pairs(
            folder,
            paradigms=self.cfg.subtasks,
            max_pairs_per_paradigm=self.cfg.max_items_per_subtask,
            seed=self.cfg.seed,
        )
        result = evaluate_pairs(pairs, scorer.sentences, items_path=items_path)
        subtasks = {
            uid: {"score": r["accuracy"], "n": r["n"]} for uid, r in result["paradigms"].items()
        }
        uniform = {"score": result["macro"], "subtasks": subtasks, "n_items": result["n_pairs"]}
        return {**self.head(scorer, folder), **uniform, **result}


@EVAL_TASKS.register("blimp")
class Blimp(MinimalPairTask):
    """Original BLiMP (Warstadt et al. 2020): 67 paradigms x 1000 pairs."""

    default_subdir = "blimp"


@EVAL_TASKS.register("blimp_filtered")
class BlimpFiltered(MinimalPairTask):
    """BabyLM's BLiMP, without pairs holding words outside the BabyLM vocabulary."""

    default_subdir = "babylm_eval/full_eval/blimp_filtered"


@EVAL_TASKS.register("blimp_supplement")
class BlimpSupplement(MinimalPairTask):
    """hypernym, qa_congruence_easy/tricky, subject_aux_inversion, turn_taking."""

    default_subdir = "babylm_eval/full_eval/supplement_filtered"


@EVAL_TASKS.register("blimp_fast")
class BlimpFast(MinimalPairTask):
    """200 pairs per filtered-BLiMP paradigm, for intermediate checkpoints."""

    default_subdir = "babylm_eval/fast_eval/blimp_fast"


@EVAL_TASKS.register("supplement_fast")
class SupplementFast(MinimalPairTask):
    """50 pairs per supplement file, for intermediate checkpoints."""

    default_subdir = "babylm_eval/fast_eval/supplement_fast"
