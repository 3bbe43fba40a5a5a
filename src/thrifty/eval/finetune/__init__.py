"""(Super)GLUE-style classification fine-tuning of a run's backbone (BabyLM's protocol).

``finetune_task(run, "rte", data_root=..., seeds=(0, 1, 2))`` is the entry point; the pieces
(task specs, classifier, loop, metrics, stratified subsamples) are importable for protocols that
need their own splits, such as ``thrifty.eval.label_efficiency``.
"""

from thrifty.eval.finetune.classifier import Classifier, Encoded, build_classifier, encode
from thrifty.eval.finetune.metrics import accuracy, f1, mcc, roc_auc
from thrifty.eval.finetune.run import finetune_task
from thrifty.eval.finetune.subsample import stratified_order, stratified_subsample
from thrifty.eval.finetune.tasks import TASKS, Example, TaskSpec, data_root, get_task, read_split
from thrifty.eval.finetune.trainer import Fit, Settings, evaluate, fit, predict

__all__ = [
    "TASKS",
    "Classifier",
    "Encoded",
    "Example",
    "Fit",
    "Settings",
    "TaskSpec",
    "accuracy",
    "build_classifier",
    "data_root",
    "encode",
    "evaluate",
    "f1",
    "finetune_task",
    "fit",
    "get_task",
    "mcc",
    "predict",
    "read_split",
    "roc_auc",
    "stratified_order",
    "stratified_subsample",
]
