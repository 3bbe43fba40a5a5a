"""Synthetic continued-pretraining data: EntiGraph (papers/entigraph.md) and its small world.

- :mod:`.world`: the card's small-scale world of invented entities, facts and questions;
- :mod:`.entigraph`: source documents, entity extraction, the pair/triple task order, the loop;
- :mod:`.generators`: template, thrifty run, ``transformers`` and HTTP generators;
- :mod:`.writer`: the resumable in-progress folder;
- :mod:`.dataset`: the finished prepared dataset and its ledger;
- :mod:`.synthesis`: all of it as one function, :func:`synthesize`.
"""

from thrifty.data.synthesize.synthesis import synthesize

__all__ = ["synthesize"]
