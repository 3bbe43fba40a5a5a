"""thrifty: sample-efficient pretraining under a fixed word budget."""

__version__ = "0.1.0"
