"""``train(cfg)``: the whole training loop, readable top to bottom.

Build the ledger, data, model, objective and optimizer; then ``for step ...``: accumulate, clip,
step, schedule; evaluate every ``eval_every``; checkpoint every ``checkpoint_every`` and when the
words seen cross a BabyLM mark. Every window served is charged to the ledger. A killed run
resumed with ``resume="auto"`` ends with the same weights, bit for bit on CPU.

``_train`` is the outline: the plan the config and data fix (``train.plan``), the networks
(``train.networks``), a resume (``train.resume``), the run folder, then ``_steps``; the stages
that are the loop's own follow it in this file, in the order they run.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from thrifty.atomic import write_text_atomic
from thrifty.config import RunConfig, dump_config
from thrifty.errors import UserError
from thrifty.eval.pathways import moe_layers
from thrifty.objectives import Objective
from thrifty.objectives.reweighting import Reweighting
from thrifty.train import distributed
from thrifty.train.checkpoint import rng_state, save_checkpoint
from thrifty.train.curriculum import phase_at
from thrifty.train.evaluate import evaluate, final_blimp
from thrifty.train.metrics import FlopsCount, MetricsLog, RunPeak, step_line, throughput
from thrifty.train.networks import Networks, build_networks, shard_networks
from thrifty.train.optim import lr_at
from thrifty.train.plan import Plan, plan_run
from thrifty.train.resume import Position, resume_run, run_state
from thrifty.train.reverse_sparsification import switch_to_dense
from thrifty.train.schedule import word_marks
from thrifty.train.sharding import (
    full_optimizer_state,
    full_state,
    full_tensors,
)
from thrifty.train.start import (
    charge_start_model,
    pick_device,
    precision,
    resume_point,
    start_from,
    uses_bf16,
)
from thrifty.train.step import (  # TrainingDiverged: what train() raises
    DivergenceWatch,
    TrainingDiverged,  # noqa: F401
    accumulate_gradients,
    apply_gradients,
    read_metrics,
)
from thrifty.train.tracking import open_sinks

log = logging.getLogger("thrifty.train")


def train(cfg: RunConfig, resume: str | None = None) -> dict:
    """Train ``cfg`` (optionally resuming) and return a summary of the finished run."""
    with contextlib.ExitStack() as closing:  # metrics.jsonl and trackers, also on an error
        return _train(cfg, resume, closing)


@dataclass
class Loop:
    """What the steps need besides the networks and the position: fixed once set up."""

    plan: Plan
    nets: Networks
    device: torch.device
    autocast: Callable
    world: int
    main: bool
    reweight: Reweighting | None
    metrics: MetricsLog | None  # rank 0 only
    carried: list[dict]  # passes the data and the start model bring along
    config_yaml: str
    pathway_ids: torch.Tensor | None  # MoE routing pathways are measured on these rows
    peak: RunPeak  # FLOP/s, for the MFU column
    marks: list[int]  # word counts at which a checkpoint is kept (train.babylm_marks)


def _train(cfg: RunConfig, resume: str | None, closing: contextlib.ExitStack) -> dict:
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc.device)
    distributed.init(device)
    rank, world = distributed.world()
    main = rank == 0
    autocast = precision(tc, device)

    plan = plan_run(cfg, world, main)
    cfg, ledger = plan.cfg, plan.ledger
    nets = build_networks(plan, device, world)
    at = Position(
        step=0,
        tokens_seen=0,
        phase=plan.phases[0],
        sampler=plan.sampler_for(plan.phases[0]),
        flops=FlopsCount(nets.objective.flops_per_token(cfg.data.seq_len)),
    )
    ckpt = resume_point(cfg, resume, create=main)
    distributed.barrier()
    optim_state = None
    if ckpt is not None:
        at, optim_state = resume_run(ckpt, plan, nets, world, main)
    carried = list(ledger.exposure)  # passes the data brings along (distillation teachers)
    if tc.init_from:  # the start model's words and passes count, whether fresh or resumed
        manifest = plan.train_source.manifest
        start, start_ledger = start_from(tc.init_from, nets.model, manifest, load=ckpt is None)
        carried += charge_start_model(ledger, start, start_ledger)
        if main and ckpt is None:
            log.info("initialised from %s", start)
    if nets.sharded:
        shard_networks(nets, optim_state, world, main)
    _set_up_objective(plan, nets.objective, device, rank, world)
    reweight = (  # loss-based sample weights from each batch's own losses (Sow et al. 2025)
        Reweighting(tc.reweight, gather=distributed.all_gather_rows, rank=rank, world=world)
        if tc.reweight.strategy != "none"
        else None
    )
    config_yaml = dump_config(cfg)
    metrics = None
    if main:
        kept_step = at.step if ckpt else None
        metrics = closing.enter_context(_open_run_folder(plan, config_yaml, kept_step))
    loop = Loop(
        plan=plan,
        nets=nets,
        device=device,
        autocast=autocast,
        world=world,
        main=main,
        reweight=reweight,
        metrics=metrics,
        carried=carried,
        config_yaml=config_yaml,
        pathway_ids=_pathway_ids(plan, nets.model, device),
        peak=RunPeak(device, uses_bf16(tc, device), tc.peak_flops),
        marks=word_marks() if tc.babylm_marks else [],
    )
    _log_start(loop, at)
    t_start = time.perf_counter()
    last = _steps(loop, at)

    blimp = final_blimp(cfg, nets.model, nets.objective.kind, ledger, nets.sharded, device)
    if blimp:
        metrics.write({"step": at.step, "words": ledger.words_seen, **blimp})
        last.update(blimp)
    distributed.shutdown()
    return {
        "run_dir": str(cfg.run_dir),
        "steps": at.step,
        "tokens": at.tokens_seen,
        "words_seen": ledger.words_seen,
        "epochs": at.epochs,
        "seconds": time.perf_counter() - t_start,
        **{k: v for k, v in last.items()},
    }


def _steps(loop: Loop, at: Position) -> dict:
    """The training steps from ``at`` to the end, evaluating and checkpointing on schedule;
    returns the last logged metrics and evaluation."""
    plan, nets, objective = loop.plan, loop.nets, loop.nets.objective
    cfg, ledger, total_steps = plan.cfg, plan.ledger, plan.total_steps
    tc = cfg.train
    nets.model.train()
    start_step, t_start = at.step, time.perf_counter()
    t_window, window_tokens, last = time.perf_counter(), 0, {}
    diverged = DivergenceWatch()
    while at.step < total_steps:
        _enter_step(plan, nets, at, loop.main)
        lr = lr_at(at.step, total_steps, tc)
        for group in nets.optimizer.param_groups:
            group["lr"] = lr
        sums = accumulate_gradients(
            objective,
            at.sampler,
            plan.train_source,
            tc=tc,
            phase=at.phase,
            phases=plan.phases,
            step=at.step,
            total_steps=total_steps,
            device=loop.device,
            reweight=loop.reweight,
            autocast=loop.autocast,
        )
        diverged.observe(at.step + 1, sums["loss"])  # read at the next log, eval or checkpoint
        grad_norm = apply_gradients(
            nets.trained, nets.optimizer, tc.grad_clip, averaged=nets.sharded, ema=nets.ema
        )
        at.step += 1
        words_before = ledger.words_seen
        at.tokens_seen += plan.tokens_per_step
        window_tokens += plan.tokens_per_step
        ledger.charge_tokens(plan.tokens_per_step, plan.train_source.units_per_token)
        exposure = objective.exposure(at.step * tc.grad_accum, at.phase.batch_size)
        ledger.exposure = [*loop.carried, *exposure]

        crossed = [m for m in loop.marks if words_before < m <= ledger.words_seen]
        evaluating = (tc.eval_every and at.step % tc.eval_every == 0) or at.step == total_steps
        saving = (
            crossed
            or at.step == total_steps
            or (tc.checkpoint_every and at.step % tc.checkpoint_every == 0)
        )
        logging_now = at.step % tc.log_every == 0 or at.step == total_steps
        if logging_now or evaluating or saving:  # a read: the step's queued work is done
            diverged.check(cfg.run_dir)
        if logging_now:
            tok_s = window_tokens / max(time.perf_counter() - t_window, 1e-9)
            per_step = (time.perf_counter() - t_start) / max(at.step - start_step, 1)
            eta = (total_steps - at.step) * per_step
            last = _log_step(loop, at, sums, lr=lr, grad_norm=grad_norm, tok_s=tok_s, eta=eta)
            t_window, window_tokens = time.perf_counter(), 0

        # Time spent evaluating and checkpointing is kept out of the tokens/s window.
        t_pause = time.perf_counter()
        if evaluating:
            last.update(_evaluate(loop, at))
        if saving:
            _save(loop, at, word_mark=crossed[-1] if crossed else None)
        t_window += time.perf_counter() - t_pause
    return last


def _set_up_objective(plan: Plan, objective: Objective, device, rank: int, world: int) -> None:
    """The objective's own set-up (e.g. a replay set), charged to the ledger."""
    cfg = plan.cfg
    setup = {"seq_len": cfg.data.seq_len, "device": device, "init_from": cfg.train.init_from}
    for name, words in objective.setup(**setup, rank=rank, world=world).items():
        plan.ledger.charge_aux_model(name, words)
    if len(plan.phases) > 1 and objective.exposure(1, cfg.train.batch_size):
        raise UserError(  # its replayed rows are counted per micro-batch of one size
            "data.seq_len_curriculum does not combine with an objective that replays other "
            f"data ({cfg.objective['name']})"
        )


def _open_run_folder(plan: Plan, config_yaml: str, kept_step: int | None) -> MetricsLog:
    """Rank 0's run folder: the config, the data's run files (the tokenizer) and the metrics
    log with its trackers; a resumed run's log and trackers drop rows past ``kept_step``."""
    cfg = plan.cfg
    write_text_atomic(cfg.run_dir / "config.yaml", config_yaml)
    for name in plan.train_source.run_files:
        shutil.copyfile(Path(cfg.data.path) / name, cfg.run_dir / name)
    sinks = open_sinks(cfg, plan.ledger.to_dict(), kept_step)  # fed the metrics.jsonl rows
    return MetricsLog(cfg.run_dir / "metrics.jsonl", kept_step, sinks)


def _pathway_ids(plan: Plan, model: torch.nn.Module, device) -> torch.Tensor | None:
    """The training rows whose MoE routing pathways each evaluation measures (None: no MoE)."""
    cfg = plan.cfg
    if not (cfg.eval.pathway_samples and moe_layers(model)):
        return None
    n = min(cfg.eval.pathway_samples, plan.train_source.num_items(cfg.data.seq_len))
    return plan.train_source.batch(range(n), cfg.data.seq_len)["ids"][:, :-1].to(device)


def _log_start(loop: Loop, at: Position) -> None:
    """Rank 0's one line about the run before its first step."""
    if not loop.main:
        return
    nets, owned = loop.nets, loop.nets.owned
    log.info(
        "model: %.2fM parameters (+%.2fM trained by the objective), %.1f MFLOPs/token; "
        "%d steps of %d tokens; data %s",
        nets.model.num_params() / 1e6,
        sum(p.numel() for p in owned.parameters()) / 1e6 if owned is not None else 0.0,
        at.flops.rate / 1e6,
        loop.plan.total_steps,
        loop.plan.tokens_per_step,
        loop.plan.cfg.data.path,
    )


def _enter_step(plan: Plan, nets: Networks, at: Position, main: bool) -> None:
    """What changes at a step boundary: Monarch layers turn dense (``train.densify_at``), or a
    longer sequence-length phase begins with its own sampler."""
    if at.step == nets.dense_from and not at.densified:
        nets.optimizer, names = switch_to_dense(nets.model, nets.optimizer, nets.new_optimizer)
        at.flops.change(nets.objective.flops_per_token(at.phase.seq_len), at.tokens_seen)
        at.densified = True
        if main:
            log.info("step %d: %d monarch layers now dense (train.densify_at)", at.step, len(names))
    if phase_at(plan.phases, at.step) != at.phase:
        at.epochs_before += at.sampler.epochs
        at.phase = phase_at(plan.phases, at.step)
        at.sampler = plan.sampler_for(at.phase)
        at.flops.change(nets.objective.flops_per_token(at.phase.seq_len), at.tokens_seen)
        if main:
            log.info(
                "step %d: windows of %d tokens, %d rows",
                at.step,
                at.phase.seq_len,
                at.phase.batch_size,
            )


def _log_step(loop: Loop, at: Position, sums: dict, *, lr, grad_norm, tok_s, eta) -> dict:
    """The step's row of metrics.jsonl (metrics averaged over ranks, speed, progress), written
    and printed by rank 0; every rank returns the metrics."""
    ledger = loop.plan.ledger
    metrics = distributed.mean_metrics(read_metrics(sums))
    row = {"step": at.step, **metrics, "lr": lr, "grad_norm": grad_norm.item()}
    loop.peak.revise(at.flops.rate * tok_s / loop.world)
    row |= throughput(
        at.tokens_seen, ledger.words_seen, at.epochs, tok_s, loop.world, at.flops, loop.peak.value
    )
    if loop.main:
        loop.metrics.write(row)
        log.info(step_line(row, loop.plan.total_steps, eta, ledger.unit))
    return metrics


def _evaluate(loop: Loop, at: Position) -> dict:
    """The validation metrics (and pathways), logged by rank 0; every rank returns them."""
    cfg, ledger = loop.plan.cfg, loop.plan.ledger
    val = evaluate(
        loop.nets.objective,
        loop.plan.valid_source,
        cfg,
        loop.device,
        loop.autocast,
        loop.world,
        loop.nets.model,
        loop.pathway_ids,
    )
    if loop.main:
        loop.metrics.write({"step": at.step, "words": ledger.words_seen, **val})
        log.info("step %d | %s", at.step, " | ".join(f"{k} {v:.4f}" for k, v in val.items()))
    return val


def _save(loop: Loop, at: Position, word_mark: int | None) -> None:
    """A checkpoint of the whole run. Sharded: every rank joins the gathers of the whole state,
    then rank 0 writes it."""
    plan, nets, main, config_yaml = loop.plan, loop.nets, loop.main, loop.config_yaml
    ema = nets.ema.state_dict() if nets.ema is not None else None
    gathered = None
    if nets.sharded:
        gathered = (full_state(nets.model), full_optimizer_state(nets.optimizer))
        ema = full_tensors(ema) if ema is not None else None
    if not main:
        return
    model_state, optim_state = gathered or (nets.model.state_dict(), nets.optimizer.state_dict())
    cfg, ledger = plan.cfg, plan.ledger
    state = run_state(
        at,
        rows_per_step=plan.rows_per_step,
        model_kind=nets.objective.kind,
        ledger=ledger.to_dict(),
        word_mark=word_mark,
        data_dir=Path(cfg.data.path),
        manifest_ledger=plan.train_source.manifest["ledger"],
    )
    save_checkpoint(
        cfg.run_dir,
        at.step,
        model_state=model_state,
        objective_state=nets.owned.state_dict() if nets.owned is not None else None,
        ema_state=ema,
        optim_state=optim_state,
        rng=rng_state({"objective": nets.objective.state_dict()}),
        state=state,
        config_yaml=config_yaml,
        keep_last=cfg.train.keep_last,
    )
    ledger.save(cfg.run_dir / "ledger.json")
