"""``train(cfg)``: the whole training loop, readable top to bottom.

Build the ledger, data, model, objective and optimizer; then ``for step ...``: accumulate, clip,
step, schedule; evaluate every ``eval_every``; checkpoint every ``checkpoint_every`` and when the
words seen cross a BabyLM mark. Every window served is charged to the ledger. A killed run
resumed with ``resume="auto"`` ends with the same weights, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

import torch

from thrifty.atomic import write_text_atomic
from thrifty.config import RunConfig, dump_config
from thrifty.data.budget import Ledger
from thrifty.data.samplers import SAMPLERS
from thrifty.errors import UserError
from thrifty.eval.pathways import moe_layers
from thrifty.objectives import OBJECTIVES
from thrifty.objectives.randomness import stream_seed
from thrifty.objectives.reweighting import Reweighting
from thrifty.train import distributed
from thrifty.train.checkpoint import load_training_state, rng_state, save_checkpoint
from thrifty.train.compiling import compiled
from thrifty.train.curriculum import Phase, phase_at, plan_phases
from thrifty.train.ema import WeightAverage
from thrifty.train.evaluate import evaluate, final_blimp
from thrifty.train.metrics import FlopsCount, MetricsLog, RunPeak, step_line, throughput
from thrifty.train.optim import build_optimizer, lr_at
from thrifty.train.resume import check_global_batch, restore, run_state
from thrifty.train.reverse_sparsification import densify_step, switch_to_dense
from thrifty.train.schedule import plan_steps, word_marks
from thrifty.train.sharding import (
    full_optimizer_state,
    full_state,
    full_tensors,
    load_sharded_optimizer_state,
    refuse_unsupported,
    shard,
    shard_like,
)
from thrifty.train.start import (
    charge_start_model,
    fit_to_data,
    initial_model,
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


def _train(cfg: RunConfig, resume: str | None, closing: contextlib.ExitStack) -> dict:
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc.device)
    distributed.init(device)
    rank, world = distributed.world()
    main = rank == 0
    autocast = precision(tc, device)

    # ---- data and ledger
    data_dir = Path(cfg.data.path)
    cfg, train_source, valid_source = fit_to_data(cfg)
    manifest = train_source.manifest
    ledger = Ledger.from_dict(manifest["ledger"])
    units_per_token = train_source.units_per_token  # words per token, for text
    T, B = cfg.data.seq_len, tc.batch_size
    rows_per_step = B * tc.grad_accum * world
    total_steps = plan_steps(tc, train_source.num_items(T), rows_per_step, T, units_per_token)
    planned_epochs = total_steps * rows_per_step / train_source.num_items(T)
    phases = plan_phases(  # sequence-length curriculum (one phase without)
        cfg.data.seq_len_curriculum, T, B, total_steps, cfg.model.max_seq_len
    )
    if planned_epochs > ledger.max_epochs and main:
        log.warning(
            "this run plans %.1f epochs, above the %g-epoch rule; `thrifty audit` will flag it",
            planned_epochs,
            ledger.max_epochs,
        )

    # ---- model, objective, sampler, optimizer
    model = initial_model(cfg).to(device)
    distributed.broadcast_parameters(model)
    forward_model = compiled(model, tc.compile)
    objective = OBJECTIVES.build(cfg.objective, forward_model, seed=tc.seed)
    owned = objective.owned  # networks the objective trains besides the model (ELECTRA)
    if owned is not None:
        distributed.broadcast_parameters(owned)
    trained = [model] if owned is None else [model, owned]
    if tc.parallel == "fsdp":  # refused at any world size, so a config fails before torchrun
        refuse_unsupported(tc, cfg.objective["name"], owns_networks=owned is not None)
    sharded = tc.parallel == "fsdp" and world > 1  # one process keeps the model whole

    def sampler_for(phase: Phase):  # each phase samples the windows of its own length
        seed = tc.seed if phase.index == 0 else stream_seed(tc.seed, phase.index)
        return SAMPLERS.build(cfg.data.sampler, train_source.num_items(phase.seq_len), seed=seed)

    phase = phases[0]
    sampler = sampler_for(phase)
    epochs_before = 0.0  # epochs of the samplers of earlier phases

    def new_optimizer():
        return build_optimizer(model, tc, device, extra=owned)

    optimizer = new_optimizer()
    dense_from = densify_step(tc.densify_at, total_steps, model)  # Monarch -> dense
    dense_now = False
    flops = FlopsCount(objective.flops_per_token(T))
    if tc.ema_decay and dense_from is not None:
        raise UserError(
            "train.ema_decay and train.densify_at do not combine (the average "
            "would mix Monarch factors and dense weights)"
        )
    ema = WeightAverage(model, tc.ema_decay) if tc.ema_decay else None

    # ---- resume or start
    step, tokens_seen = 0, 0
    ckpt = resume_point(cfg, resume, create=main)
    distributed.barrier()
    if ckpt is not None:
        state, optim_state, rng = load_training_state(ckpt)
        if state.get("densified"):  # the run had switched to dense before this checkpoint
            optimizer, _ = switch_to_dense(model, optimizer, new_optimizer)
            dense_now = True
        check_global_batch(ckpt, state, rows_per_step, tc, world)
        restore(
            ckpt,
            optim_state,
            rng,
            model=model,
            owned=owned,
            ema=ema,
            optimizer=optimizer,
            objective=objective,
        )
        phase = phases[state.get("phase", 0)]  # the phase whose sampler the state holds
        sampler = sampler_for(phase)
        sampler.load_state_dict(state["sampler"])
        epochs_before = state.get("epochs_before", 0.0)
        flops = FlopsCount(objective.flops_per_token(phase.seq_len), state.get("flops"))
        step, tokens_seen = state["step"], state["tokens_seen"]
        ledger.words_seen = state["ledger"]["words_seen"]
        if main:
            log.info("resumed from %s (step %d)", ckpt, step)
    carried = list(ledger.exposure)  # passes the data brings along (distillation teachers)
    if tc.init_from:  # the start model's words and passes count, whether fresh or resumed
        start, start_ledger = start_from(tc.init_from, model, manifest, load=ckpt is None)
        carried += charge_start_model(ledger, start, start_ledger)
        if main and ckpt is None:
            log.info("initialised from %s", start)
    if sharded:  # the weights were loaded whole above; from here each rank holds a slice
        shard(model)
        if ema is not None:  # the average is kept in the same slices as the weights
            shard_like(ema.average, model)
        optimizer = new_optimizer()  # fully_shard replaced the parameters it points at
        if ckpt is not None:
            load_sharded_optimizer_state(optimizer, optim_state)
        if main:
            log.info("train.parallel=fsdp: weights, gradients, optimizer state in %d shards", world)
    setup = {"seq_len": T, "device": device, "init_from": tc.init_from, "rank": rank}
    for name, words in objective.setup(**setup, world=world).items():  # e.g. a replay set
        ledger.charge_aux_model(name, words)
    if len(phases) > 1 and objective.exposure(1, B):
        raise UserError(  # its replayed rows are counted per micro-batch of one size
            "data.seq_len_curriculum does not combine with an objective that replays other "
            f"data ({cfg.objective['name']})"
        )
    reweight = (  # loss-based sample weights from each batch's own losses (Sow et al. 2025)
        Reweighting(tc.reweight, gather=distributed.all_gather_rows, rank=rank, world=world)
        if tc.reweight.strategy != "none"
        else None
    )
    run_dir = cfg.run_dir
    config_yaml = dump_config(cfg)
    if main:
        write_text_atomic(run_dir / "config.yaml", config_yaml)
        for name in train_source.run_files:  # the tokenizer, for text
            shutil.copyfile(data_dir / name, run_dir / name)
    kept_step = step if ckpt else None  # metrics.jsonl and the trackers drop rows past it
    metrics = None
    if main:
        sinks = open_sinks(cfg, ledger.to_dict(), kept_step)  # fed the metrics.jsonl rows
        metrics = closing.enter_context(MetricsLog(run_dir / "metrics.jsonl", kept_step, sinks))

    pathway_ids = None
    if cfg.eval.pathway_samples and moe_layers(model):
        n = min(cfg.eval.pathway_samples, train_source.num_items(T))
        pathway_ids = train_source.batch(range(n), T)["ids"][:, :-1].to(device)
    peak = RunPeak(device, uses_bf16(tc, device), tc.peak_flops)
    marks = word_marks() if tc.babylm_marks else []
    tokens_per_step = rows_per_step * T

    def checkpoint(word_mark: int | None = None) -> None:
        # sharded: every rank joins the gathers of the whole state, then rank 0 writes it
        whole_ema = ema.state_dict() if ema is not None else None
        gathered = None
        if sharded:
            gathered = (full_state(model), full_optimizer_state(optimizer))
            whole_ema = full_tensors(whole_ema) if whole_ema is not None else None
        if not main:
            return
        model_state, optim_state = gathered or (model.state_dict(), optimizer.state_dict())
        state = run_state(
            tokens_seen=tokens_seen,
            rows_per_step=rows_per_step,
            model_kind=objective.kind,
            densified=dense_now,
            flops=flops,
            phase_index=phase.index,
            epochs_before=epochs_before,
            sampler_state=sampler.state_dict(),
            ledger=ledger.to_dict(),
            word_mark=word_mark,
            data_dir=data_dir,
            manifest_ledger=manifest["ledger"],
        )
        rng = rng_state({"objective": objective.state_dict()})
        save_checkpoint(
            run_dir,
            step,
            model_state=model_state,
            objective_state=owned.state_dict() if owned is not None else None,
            ema_state=whole_ema,
            optim_state=optim_state,
            rng=rng,
            state=state,
            config_yaml=config_yaml,
            keep_last=tc.keep_last,
        )
        ledger.save(run_dir / "ledger.json")

    if main:
        log.info(
            "model: %.2fM parameters (+%.2fM trained by the objective), %.1f MFLOPs/token; "
            "%d steps of %d tokens; data %s",
            model.num_params() / 1e6,
            sum(p.numel() for p in owned.parameters()) / 1e6 if owned is not None else 0.0,
            flops.rate / 1e6,
            total_steps,
            tokens_per_step,
            data_dir,
        )
    model.train()
    start_step, t_start = step, time.perf_counter()
    t_window, window_tokens, last = time.perf_counter(), 0, {}
    diverged = DivergenceWatch()
    while step < total_steps:
        if step == dense_from and not dense_now:
            optimizer, names = switch_to_dense(model, optimizer, new_optimizer)
            flops.change(objective.flops_per_token(phase.seq_len), tokens_seen)
            dense_now = True
            if main:
                log.info(
                    "step %d: %d monarch layers now dense (train.densify_at)", step, len(names)
                )
        if phase_at(phases, step) != phase:  # a longer sequence-length phase begins
            epochs_before += sampler.epochs
            phase = phase_at(phases, step)
            sampler = sampler_for(phase)
            flops.change(objective.flops_per_token(phase.seq_len), tokens_seen)
            if main:
                log.info(
                    "step %d: windows of %d tokens, %d rows", step, phase.seq_len, phase.batch_size
                )
        lr = lr_at(step, total_steps, tc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        sums = accumulate_gradients(
            objective,
            sampler,
            train_source,
            tc=tc,
            phase=phase,
            phases=phases,
            step=step,
            total_steps=total_steps,
            device=device,
            reweight=reweight,
            autocast=autocast,
        )
        diverged.observe(step + 1, sums["loss"])  # read at the next log, eval or checkpoint
        grad_norm = apply_gradients(trained, optimizer, tc.grad_clip, averaged=sharded, ema=ema)
        step += 1
        words_before = ledger.words_seen
        tokens_seen += tokens_per_step
        window_tokens += tokens_per_step
        ledger.charge_tokens(tokens_per_step, units_per_token)
        ledger.exposure = [*carried, *objective.exposure(step * tc.grad_accum, phase.batch_size)]

        crossed = [m for m in marks if words_before < m <= ledger.words_seen]
        evaluating = (tc.eval_every and step % tc.eval_every == 0) or step == total_steps
        saving = (
            crossed
            or step == total_steps
            or (tc.checkpoint_every and step % tc.checkpoint_every == 0)
        )
        logging_now = step % tc.log_every == 0 or step == total_steps
        if logging_now or evaluating or saving:  # a read: the step's queued work is done
            diverged.check(run_dir)
        if logging_now:
            elapsed = time.perf_counter() - t_window
            tok_s = window_tokens / max(elapsed, 1e-9)
            last = distributed.mean_metrics(read_metrics(sums))
            row = {"step": step, **last, "lr": lr, "grad_norm": grad_norm.item()}
            epoch = epochs_before + sampler.epochs
            peak.revise(flops.rate * tok_s / world)
            row |= throughput(
                tokens_seen, ledger.words_seen, epoch, tok_s, world, flops, peak.value
            )
            if main:
                metrics.write(row)
                eta = (total_steps - step) * (time.perf_counter() - t_start)
                log.info(step_line(row, total_steps, eta / max(step - start_step, 1), ledger.unit))
            t_window, window_tokens = time.perf_counter(), 0

        # Time spent evaluating and checkpointing is kept out of the tokens/s window.
        t_pause = time.perf_counter()
        if evaluating:
            val = evaluate(
                objective, valid_source, cfg, device, autocast, world, model, pathway_ids
            )
            if main:
                metrics.write({"step": step, "words": ledger.words_seen, **val})
                log.info("step %d | %s", step, " | ".join(f"{k} {v:.4f}" for k, v in val.items()))
            last.update(val)

        if saving:
            checkpoint(word_mark=crossed[-1] if crossed else None)
        t_window += time.perf_counter() - t_pause

    blimp = final_blimp(cfg, model, objective.kind, ledger, sharded, device)
    if blimp:
        metrics.write({"step": step, "words": ledger.words_seen, **blimp})
        last.update(blimp)
    distributed.shutdown()
    return {
        "run_dir": str(run_dir),
        "steps": step,
        "tokens": tokens_seen,
        "words_seen": ledger.words_seen,
        "epochs": epochs_before + sampler.epochs,
        "seconds": time.perf_counter() - t_start,
        **{k: v for k, v in last.items()},
    }
