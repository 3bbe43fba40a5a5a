"""A BabyLM submission in one folder: the final model, its word-mark checkpoints, its ledger.

BabyLM 2025 (challenge site and evaluation-pipeline-2025 README; ``papers/babylm_challenge.md``
§2, after Choshen et al. 2024, arXiv 2404.06214) asks for the final model plus intermediate
checkpoints every 1M words up to 10M, every 10M up to 100M (and every 100M up to 1B beyond
strict-small), as branches ``chck_{N}M`` of the model's Hugging Face repository. ``submit(run,
out)`` writes ``out`` as that repository, a git repository (``thrifty.export.repository``)::

    main       the final checkpoint as export_hf writes it, plus README.md (this card),
               ledger.json, audit.json (the rule check), submission.json and results/
    chck_1M    the checkpoint whose state.json records word_mark 1,000,000, exported alike
    chck_2M    ...

Branch names come from the recorded ``word_mark``: whole millions are ``chck_{N}M`` (1B is
``chck_1000M``, the 2025 naming); other marks are never rounded into a name that claims another
mark: whole thousands are ``chck_{N}K`` (500,000 words: ``chck_500K``), anything else
``chck_{N}`` in words. Each branch is one commit holding a whole model folder; the commits form
one line in training order (``git log main`` reads the marks back), and main comes last.

Remote code is chosen automatically unless ``remote_code`` says otherwise: masked, hybrid and
discriminator models, and layouts Llama lacks, get thrifty's modeling code (the BabyLM pipeline
scores GPT-BERT with its masked next-token backend, which ``LlamaForCausalLM`` cannot compute);
causal models of the Llama layout load as ``LlamaForCausalLM`` with no code. ``False`` forces
the plain export where export_hf allows it (GPT-BERT in its causal mode only).

Loading a revision: from the Hub, ``AutoModelForCausalLM.from_pretrained(repo_id,
revision="chck_1M")``. transformers (5.x; a test pins this) ignores ``revision`` for a local
folder and reads whatever is checked out there (main), so check the branch out first:
``git clone --branch chck_1M out chck_1M`` (or ``checkout_revision``), then
``from_pretrained("chck_1M")``.

Pushing: the Hub stores files over 10 MB with git LFS, and these commits hold model.safetensors
as plain blobs, so ``git lfs track`` alone would cover only later commits. Convert the history
first (git-lfs installed): ``git lfs install; git -C out lfs migrate import --everything
--include="*.safetensors"``, then ``git push --all`` to the Hub repository. Alternatively
upload each branch's checkout with ``huggingface_hub`` (``create_branch``, then
``upload_folder(..., revision=name)``), which uses LFS by itself.

The rule check is the verdict of ``thrifty audit RUN`` (``Ledger.violations`` of the run's
ledger.json): a run that broke a rule is refused, naming it, and nothing is written; the folder
is built next to ``out`` and renamed into place only when complete.

Evaluation results: every ``RUN/eval/*.json`` written for the final checkpoint (its
``checkpoint``, and ``weights`` where recorded, match) is copied unchanged to ``results/`` in
thrifty's schema (``thrifty.eval.tasks``; fine-tuning and label efficiency alike); results of
other checkpoints are left out and listed in submission.json.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from thrifty.atomic import replace_folder
from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.errors import UserError
from thrifty.export import repository
from thrifty.export.hf import export_hf, needs_remote_code
from thrifty.export.submission_record import final_results, write_main
from thrifty.runs import CHECKPOINTS, latest_checkpoint, model_kind, read_config, read_state

_STEP_FOLDER = re.compile(r"step_\d+")  # finished checkpoints only, not .tmp / .old copies


def revision_name(words: int) -> str:
    """The branch of a word mark: ``chck_{N}M`` for whole millions (BabyLM 2025), else
    ``chck_{N}K`` for whole thousands, else ``chck_{N}`` in words."""
    if words >= 1_000_000 and words % 1_000_000 == 0:
        return f"chck_{words // 1_000_000}M"
    if words >= 1_000 and words % 1_000 == 0:
        return f"chck_{words // 1_000}K"
    return f"chck_{words}"


@dataclass
class Revision:
    """One branch: the checkpoint it holds and the word mark it stands for."""

    name: str
    checkpoint: Path
    step: int
    word_mark: int | None
    words_seen: float

    def record(self) -> dict:
        return {
            "name": self.name,
            "word_mark": self.word_mark,
            "step": self.step,
            "checkpoint": self.checkpoint.name,
            "words_seen": self.words_seen,
        }


@dataclass
class Submission:
    path: Path
    final: Revision
    revisions: list[Revision]
    remote_code: bool
    results: list[str] = field(default_factory=list)
    """Files copied to results/, relative to ``path``."""
    left_out: list[dict] = field(default_factory=list)
    """Results in RUN/eval/ of other checkpoints than the final one."""
    missing_marks: list[int] = field(default_factory=list)
    """BabyLM marks the run has passed but holds no checkpoint for."""


def _revision(ckpt: Path, name: str) -> Revision:
    state = read_state(ckpt, verify=False)  # export_hf verifies the files it reads
    mark = state.get("word_mark")
    words = float(state.get("ledger", {}).get("words_seen", 0.0))
    return Revision(name, ckpt, int(state.get("step", 0)), mark, words)


def word_mark_revisions(run_dir: Path) -> list[Revision]:
    """The run's word-mark checkpoints (``state.json`` ``word_mark``), by mark."""
    found: dict[int, Revision] = {}
    for ckpt in sorted((Path(run_dir) / CHECKPOINTS).glob("step_*")):
        if not (_STEP_FOLDER.fullmatch(ckpt.name) and ckpt.is_dir()):
            continue
        mark = read_state(ckpt, verify=False).get("word_mark")
        if not mark:
            continue
        if mark in found:
            raise UserError(
                f"{found[mark].checkpoint.name} and {ckpt.name} both record word mark {mark:,}"
            )
        found[mark] = _revision(ckpt, revision_name(int(mark)))
    return [found[m] for m in sorted(found)]


def missing_marks(marks: list[int], revisions: list[Revision], words_seen: float) -> list[int]:
    """Marks up to ``words_seen`` without a revision (a step that crossed two marks keeps only
    the later one, and a deleted checkpoint leaves a gap)."""
    have = {r.word_mark for r in revisions}
    return [m for m in marks if m <= words_seen and m not in have]


def _check_out(out: Path, run_dir: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    run = run_dir.resolve()
    if out.resolve() == run or out.resolve() in run.parents:
        raise UserError(f"{out} holds the run {run_dir}; write the submission elsewhere")


def _final_revision(run_dir: Path) -> Revision:
    if not (run_dir / LEDGER_FILE).is_file():
        raise UserError(f"{run_dir}: not a run folder (no {LEDGER_FILE}); submit takes a run")
    final = latest_checkpoint(run_dir)
    if final is None:
        raise UserError(f"{run_dir} holds no checkpoint ({CHECKPOINTS}/latest)")
    return _revision(final, "main")


def submit(
    run: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    remote_code: bool | None = None,
    ema: bool = False,
) -> Submission:
    """Write the submission repository ``out`` from the run folder ``run`` (module docstring).

    ``remote_code``: None chooses by model kind and layout (``needs_remote_code``).
    """
    run_dir, out = Path(run), Path(out)
    _check_out(out, run_dir, overwrite)
    final = _final_revision(run_dir)
    ledger = Ledger.load(run_dir)
    problems = ledger.violations()  # the same verdict as `thrifty audit RUN`
    if problems:
        raise UserError(
            f"{run_dir} breaks a BabyLM rule ({'; '.join(problems)}): `thrifty audit "
            f"{run_dir}` fails, so no submission was written"
        )
    cfg = read_config(final.checkpoint)
    if remote_code is None:
        kind = model_kind(read_state(final.checkpoint, verify=False), cfg)
        remote_code = needs_remote_code(cfg.model, kind)
    revisions = word_mark_revisions(run_dir)
    sub = Submission(out, final, revisions, remote_code)
    if cfg.train.babylm_marks:
        from thrifty.train.schedule import word_marks  # the marks the loop checkpoints at

        sub.missing_marks = missing_marks(word_marks(), revisions, final.words_seen)
    weights = "ema.safetensors" if ema else "model.safetensors"
    kept, sub.left_out = final_results(run_dir, final.checkpoint, weights)
    sub.results = [f"results/{p.name}" for p in kept]

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        repo = work / "repo"
        repository.init(repo)
        for rev in revisions:
            stage = export_hf(rev.checkpoint, work / rev.name, remote_code=remote_code, ema=ema)
            message = f"{rev.name}: word mark {rev.word_mark:,}, step {rev.step}"
            repository.branch(repo, rev.name, repository.commit_folder(repo, stage, message))
            shutil.rmtree(stage)  # its files are in the repository now
        stage = export_hf(final.checkpoint, work / "final", remote_code=remote_code, ema=ema)
        for file in stage.iterdir():
            file.replace(repo / file.name)
            if file.suffix == ".safetensors":  # written owner-only; a submission is shared
                (repo / file.name).chmod(0o644)
        write_main(repo, sub, run_dir, ledger, cfg, kept)
        message = f"final model: step {final.step}, {final.words_seen:,.0f} words seen"
        repository.commit_folder(repo, repo, message)
        replace_folder(repo, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sub
