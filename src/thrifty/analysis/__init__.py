"""Analysis of finished runs: reports with plots (``report``), scaling fits, sweeps.

Reads run folders (``config.yaml``, ``metrics.jsonl``, ``ledger.json``, checkpoints, ``eval/``)
and never imports the training loop (DESIGN.md, dependencies run one way).
"""
