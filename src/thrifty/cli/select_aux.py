"""The auxiliary runs and data of one ``thrifty select`` (CoLoR-Filter) selection: the prior's
sample and run, the target data, the conditional run and the scoring. All of it lives in the
work folder and is reused when the command runs again. ``prior_texts`` tells the selection's
ledger which text the prior's charge holds, so that a tokenizer trained on it is not charged
twice (``thrifty.data.provenance``).
"""

from __future__ import annotations

from pathlib import Path

# Auxiliary models after the card's small-scale check: 2 layers, width 128, windows of 128.
AUX_RECIPE = [
    "model.size=nano",
    "model.d_model=128",
    "model.n_layers=2",
    "model.n_heads=4",
    "model.max_seq_len=256",
    "data.seq_len=128",
    "objective.name=causal_lm",
    "train.batch_size=32",
    "train.lr=3e-3",
    "train.warmup_steps=50",
    "train.max_epochs=1",
    "train.eval_every=0",
    "train.eval_batches=4",
    "train.checkpoint_every=0",
    "train.log_every=50",
]
# The conditional model: the card's fine-tuning (finetune-books.yaml), one epoch of the target.
FINETUNE = ["train.lr=1e-3", "train.warmup_steps=20", "train.max_epochs=1", "train.max_steps=null"]
AUX_VALID_FRACTION = 0.02  # a sliver of each auxiliary data set, so its run reports val loss


class Aux:
    """The auxiliary runs and data of one selection, kept (and reused) in the work folder."""

    def __init__(
        self, work, config, overrides, seed, device, threads, progress, tokenizer, tokenizer_words
    ):
        self.work, self.config, self.progress, self.seed = work, config, progress, seed
        runtime = [f"train.seed={seed}", f"train.device={device}", f"runs_dir={work}"]
        self.extra = [*overrides, *runtime, *([f"train.threads={threads}"] if threads else [])]
        self.device, self.tokenizer = device, tokenizer
        self.tokenizer_words = tokenizer_words  # the user's statement for their own tokenizer
        self.prior_texts: list[str] = []  # sha256 of texts whose words the prior's charge holds

    def stated_words(self, tokenizer: Path) -> int | None:
        """The user's statement of the tokenizer's words, for the user's own tokenizer only."""
        return self.tokenizer_words if tokenizer == self.tokenizer else None

    def train(self, recipe: list[str]) -> Path:
        """Train (or finish, or reuse) an auxiliary run; its folder."""
        from thrifty.config import load_config
        from thrifty.train.loop import train

        cfg = load_config(self.config, [*([] if self.config else AUX_RECIPE), *recipe])
        train(cfg, resume="auto")
        return cfg.run_dir

    def prior(self, scans, candidates, words: int, vocab_size: int, chunk_words: int):
        """Train the prior on ``words`` random candidate words; (run, its tokenizer file)."""
        from thrifty.data.budget import Ledger, select_sample
        from thrifty.data.prepare import MANIFEST_FILE, load_manifest, write_selection

        data = self.work / "prior-data"
        if not (data / MANIFEST_FILE).is_file():
            write_selection(
                scans,
                select_sample(candidates, words, self.seed + 1),
                data,
                ledger=Ledger(selection="sample", seed=self.seed),
                seed=self.seed,
                vocab_size=vocab_size,
                valid_fraction=AUX_VALID_FRACTION,
                max_doc_words=chunk_words,
                tokenizer_path=self.tokenizer,
                tokenizer_words=self.tokenizer_words,
                progress=self.progress,
            )
        run = self.train([f"data.path={data}", "name=prior", *self.extra])
        # the prior read exactly its training split: a tokenizer trained on it adds no words
        self.prior_texts = Ledger.from_dict(load_manifest(data)["ledger"]).texts
        # the prior data's tokenizer file: its manifest records the words it was trained on
        return run, self.tokenizer or data / "tokenizer.json"

    def given_prior(self, path: str):
        """(run, tokenizer file, words charged by its ledger) of a prior trained elsewhere."""
        from thrifty.data.budget import Ledger
        from thrifty.runs import load_model

        loaded = load_model(path)
        ledger = Ledger.from_dict(loaded.ledger()) if loaded.ledger() else Ledger()
        self.prior_texts = ledger.known_texts()  # its charge is its whole ledger's
        return loaded.run_dir, loaded.run_dir / "tokenizer.json", ledger.charged_words()

    def target_data(self, target, words: int | None, tokenizer: Path):
        """Prepare the target with the prior's tokenizer; (its words, its ledger sources)."""
        from thrifty.data.prepare import MANIFEST_FILE, load_manifest, prepare

        data = self.work / "target-data"
        if not (data / MANIFEST_FILE).is_file():
            prepare(
                target,
                data,
                budget_words=words,
                seed=self.seed,
                valid_fraction=AUX_VALID_FRACTION,
                tokenizer_path=tokenizer,
                tokenizer_words=self.stated_words(tokenizer),
                progress=self.progress,
            )
        manifest = load_manifest(data)
        self.target = data
        return sum(manifest["words"].values()), manifest["ledger"]["sources"]

    def conditional(self, prior_run: Path) -> Path:
        recipe = [f"data.path={self.target}", "name=conditional", f"train.init_from={prior_run}"]
        return self.train([*recipe, *self.extra, *FINETUNE])

    def score(self, prior_run, cond_run, tokenizer, scans, candidates, chunk_words):
        """(prior NLL, conditional NLL) of every candidate, batched on the chosen device."""
        import torch

        from thrifty.data.color_filter import candidate_texts, score_candidates
        from thrifty.data.tokenizer import load_tokenizer
        from thrifty.runs import load_model

        auto = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(auto if self.device == "auto" else self.device)
        prior, cond = load_model(prior_run, device).model, load_model(cond_run, device).model
        texts = candidate_texts(scans, candidates, chunk_words)
        return score_candidates(prior, cond, load_tokenizer(tokenizer), texts, device=device)
