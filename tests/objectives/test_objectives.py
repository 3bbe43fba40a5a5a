import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import MASK_ID, NUM_SPECIAL
from thrifty.model_kind import TEXT_KINDS
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.masking import Masking, mask_tokens
from thrifty.objectives.randomness import RowRandom

V = 97


def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(size="nano", vocab_size=V, max_seq_len=64))


def windows(B=8, T=33, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(NUM_SPECIAL, V, (B, T), generator=g)


TEXT_OBJECTIVES = [n for n in OBJECTIVES.names() if OBJECTIVES.get(n).kind in TEXT_KINDS]


def test_objectives_of_other_modalities_are_tested_with_their_data():
    assert {"mae", "softcon", "dpt"} <= set(OBJECTIVES.names()) - set(TEXT_OBJECTIVES)


@pytest.mark.parametrize("name", TEXT_OBJECTIVES)  # images: tests/vision; policies: tests/decision
def test_every_objective_learns_a_repeated_batch(name):
    m = model()
    objective = OBJECTIVES.build({"name": name}, m, seed=0)
    owned = list(objective.owned.parameters()) if objective.owned is not None else []
    opt = torch.optim.AdamW([*m.parameters(), *owned], lr=1e-2)
    # Rows that repeat with a short period: masked tokens are predictable from their neighbours.
    ids = NUM_SPECIAL + (torch.arange(33)[None] * torch.arange(1, 9)[:, None] % 7)
    losses = []
    for step in range(30):
        out = objective(Batch(ids, progress=step / 30, micro=step))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
        assert out.sample_losses.shape == (8,)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_masking_rate_specials_and_replacements():
    ids = windows(64, 200)
    ids[:, ::17] = 1  # BOS markers inside windows are special: never masked
    corrupted, chosen = mask_tokens(
        ids, 0.3, Masking(span=False), V, RowRandom(0, "m", 0, range(64))
    )
    assert not chosen[ids < NUM_SPECIAL].any()
    assert (
        abs(chosen.float().mean().item() / (ids >= NUM_SPECIAL).float().mean().item() - 0.3) < 0.01
    )
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    sel = corrupted[chosen]
    assert abs((sel == MASK_ID).float().mean().item() - 0.8) < 0.03
    kept = (corrupted == ids)[chosen].float().mean().item()
    assert 0.09 < kept < 0.13  # 10% kept plus random draws that hit the original


def test_span_masking_masks_whole_spans_at_the_rate():
    ids = windows(64, 300)
    _, chosen = mask_tokens(ids, 0.15, Masking(span=True), V, RowRandom(1, "m", 0, range(64)))
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    runs = []  # lengths of masked runs: spans of 1..3 make runs longer than 1 common
    for row in chosen:
        n = 0
        for x in row.tolist() + [False]:
            if x:
                n += 1
            elif n:
                runs.append(n)
                n = 0
    assert sum(runs) / len(runs) > 1.5


def test_mlm_loss_counts_masked_positions_only():
    m = model()
    objective = OBJECTIVES.build({"name": "masked_lm"}, m, seed=0)
    ids = windows()
    out = objective(Batch(ids))
    random = objective.random(Batch(ids), "mask")  # the same streams: the same masks
    corrupted, chosen = mask_tokens(ids[:, :-1], 0.15, objective.cfg.masking, V, random)
    logits = m.logits(m(corrupted, causal=False))
    expected = torch.nn.functional.cross_entropy(logits[chosen], ids[:, :-1][chosen])
    assert torch.allclose(out.loss, expected, atol=1e-5)


def test_gpt_bert_mntp_reads_masked_token_one_position_left():
    m = model()
    objective = OBJECTIVES.build({"name": "gpt_bert", "causal_fraction": 0.0, "z_loss": 0.0}, m)
    ids = windows()
    out = objective(Batch(ids, progress=0.0))
    random = objective.random(Batch(ids), "mask")
    corrupted, chosen = mask_tokens(ids, 0.30, objective.cfg.masking, V, random)
    hidden = m(corrupted[:, :-1], causal=False)
    sel = chosen[:, 1:]
    expected = torch.nn.functional.cross_entropy(m.logits(hidden[sel]), ids[:, 1:][sel])
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert out.metrics["mask_rate"] == pytest.approx(0.30)


def test_gpt_bert_mask_rate_anneals():
    objective = OBJECTIVES.build({"name": "gpt_bert"}, model())
    assert objective.mask_rate(0.0) == pytest.approx(0.30)
    assert objective.mask_rate(0.5) == pytest.approx(0.225)
    assert objective.mask_rate(1.0) == pytest.approx(0.15)


def test_gpt_bert_per_batch_weights_the_two_losses():
    m = model()
    frac = 0.25
    objective = OBJECTIVES.build({"name": "gpt_bert", "causal_fraction": frac}, m)
    ids = windows(B=8)
    out = objective(Batch(ids))
    masked_rows = torch.arange(8) >= 2  # the first quarter of the rows is causal
    random = objective.random(Batch(ids), "mask").select(masked_rows)
    loss_c = objective.causal_part(ids[:2], None)[0].value
    loss_m = objective.masked_part(ids[2:], None, objective.mask_rate(0.0), random)[0].value
    assert torch.allclose(out.loss, frac * loss_c + (1 - frac) * loss_m, atol=1e-6)


def test_gpt_bert_per_step_mix_is_one_causal_in_sixteen():
    objective = OBJECTIVES.build({"name": "gpt_bert", "mix": "per_step"}, model())
    kinds = ["causal_loss" in objective(Batch(windows(2), micro=i)).metrics for i in range(32)]
    assert sum(kinds) == 2 and kinds[15] and kinds[31]


def test_gpt_bert_per_example_mix_follows_the_sample_not_the_batch():
    objective = OBJECTIVES.build({"name": "gpt_bert", "mix": "per_example"}, model())

    def modes(batch_size: int, n: int = 128) -> list[bool]:
        picked = []
        for micro in range(n // batch_size):
            picked += objective.global_causal(Batch(windows(batch_size), micro=micro)).tolist()
        return picked

    assert modes(16) == modes(32) == modes(8)  # the same samples are causal at any batch size
    assert 2 <= sum(modes(16)) <= 20  # about 1 in 16 of 128


def test_gpt_bert_per_example_weights_parts_by_their_share_of_rows():
    m = model()
    objective = OBJECTIVES.build(
        {"name": "gpt_bert", "mix": "per_example", "causal_fraction": 0.5}, m
    )
    ids = windows(B=8)
    batch = Batch(ids, micro=3)
    causal = objective.causal_rows(batch)
    assert 0 < int(causal.sum()) < 8
    out = objective(batch)
    share = causal.float().mean().item()
    random = objective.random(batch, "mask").select(~causal)
    loss_c = objective.causal_part(ids[causal], None)[0].value
    loss_m = objective.masked_part(ids[~causal], None, objective.mask_rate(0.0), random)[0].value
    assert torch.allclose(out.loss, share * loss_c + (1 - share) * loss_m, atol=1e-6)
    # a rank holding half of the rows sees the same global split
    half = Batch(ids[4:], micro=3, rows=torch.arange(4, 8), global_rows=8)
    assert torch.equal(objective.causal_rows(half), causal[4:])
    assert set(objective(half).terms) == {"causal", "mntp"}


def test_sample_weights_give_weighted_row_losses():
    m = model()
    objective = OBJECTIVES.build({"name": "causal_lm"}, m)
    ids = windows(4)
    plain = objective(Batch(ids))
    w = torch.tensor([0.7, 0.1, 0.1, 0.1])
    weighted = objective(Batch(ids, weights=w))
    assert torch.allclose(weighted.loss, (w * plain.sample_losses).sum(), atol=1e-6)
