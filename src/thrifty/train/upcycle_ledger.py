"""The ledger of a mixture upcycled from dense specialists (BTX, Sukhbaatar et al. 2024; BAM,
Zhang et al. 2024).

Each specialist is charged as ``train.init_from`` charges a start model: one auxiliary entry with
its charged words and the texts they include, and its word sets passed on as exposure. Specialists
branched from one seed each carry the seed's charge inside theirs (an auxiliary ``start model``
entry) and its passes inside their exposure, and those are the same words and the same passes,
not N copies: the seed's words are charged once (the rest are ``overlap_words``, which the audit
prints) and its word sets are kept once. A specialist is recognised as holding the seed by
content, not by path: an auxiliary entry with the seed's charged words and texts (or the
specialist is the seed itself). A specialist that does not hold it is charged whole.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from thrifty.data.budget import Ledger
from thrifty.train.start import START_MODEL

log = logging.getLogger("thrifty.upcycle")


def holds(ledger: Ledger, seed: Ledger) -> bool:
    """Whether ``ledger`` charges the whole of ``seed`` (as its start model, or by being it)."""
    if ledger.to_dict() == seed.to_dict():
        return True
    words, texts = seed.charged_words(), seed.known_texts()
    return any(
        int(m["words"]) == words and sorted(m.get("texts", [])) == texts
        for m in ledger.aux_models
        if m["name"].startswith(START_MODEL)
    )


def _inherited_from(seed_sets: list[dict[str, Any]], entry: dict[str, Any]) -> bool:
    """Whether a specialist's exposure entry is one of the seed's word sets, which the training
    loop passed on as ``start model PATH: NAME``."""
    return any(
        entry["name"].endswith(f": {s['name']}")
        and entry["words"] == s["words"]
        and entry["passes"] == s["passes"]
        and entry.get("sources") == s.get("sources")
        for s in seed_sets
    )


def _passed_on(ledger: Ledger, prefix: str, seed: Ledger, drop_seed: bool) -> list[dict]:
    """``ledger.passed_on(prefix)``, less the seed's word sets when ``drop_seed``."""
    is_seed = ledger.to_dict() == seed.to_dict()
    seed_sets = [s for s in seed.word_sets() if s["passes"] > 0]
    kept = []
    for i, entry in enumerate(ledger.word_sets()):
        if entry["passes"] <= 0:
            continue
        # a specialist's own training set is never the seed's, even with equal counts
        if drop_seed and (is_seed or (i > 0 and _inherited_from(seed_sets, entry))):
            continue
        kept.append({**copy.deepcopy(entry), "name": f"{prefix}: {entry['name']}"})
    return kept


def upcycled_ledger(
    seed: Ledger, specialists: list[tuple[str, Ledger]], note: str, tokenizer: str
) -> Ledger:
    """The mixture's ledger from the seed's and the (distinct) specialists' ledgers.

    The mixture has seen no words itself: it has no prepared data and ``words_seen`` 0. Its
    budget is the largest of the specialists' (as a model soup's), and its epoch limit the
    strictest. Its tokenizer (at path ``tokenizer``) is recorded as reused, since it has no
    prepared split of its own that it could have been trained on.
    """
    budgets = [s.budget_words for _, s in specialists if s.budget_words is not None]
    record = {**copy.deepcopy(specialists[0][1].tokenizer), "path": tokenizer}
    out = Ledger(
        budget_words=max(budgets) if budgets else None,
        tokenizer=record,
        max_epochs=min(s.max_epochs for _, s in specialists),
        prepared_words={"train": 0, "valid": 0},
    )
    holders = 0
    for name, ledger in specialists:
        prefix = f"specialist {name}"
        out.charge_aux_model(prefix, ledger.charged_words(), ledger.known_texts())
        inherits = holds(ledger, seed)
        if not inherits:
            log.warning("%s does not hold the seed's charge; its words are charged whole", name)
        # the seed's passes reach the mixture once, through the first specialist holding them
        out.exposure += _passed_on(ledger, prefix, seed, drop_seed=inherits and holders > 0)
        holders += inherits
    out.overlap_words = max(holders - 1, 0) * seed.charged_words()
    # A tokenizer whose words nothing proves known is paid by every specialist (they share it)
    # and by the mixture's own record of it: keep one payment.
    paid = [w for w in (s.tokenizer_words() for _, s in specialists) if w]
    out.overlap_words += sum(paid) - max(paid, default=0) + out.tokenizer_words()
    out.details = {"upcycle": note}
    if holders > 1:
        out.details["seed"] = (
            f"{seed.charged_words():,} words in each of {holders} specialists' charges, "
            "charged once"
        )
    return out
