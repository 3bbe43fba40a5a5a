import torch

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import BOS_ID, PAD_ID, SEP_ID
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.base import IGNORE
from thrifty.objectives.dobf import supervised_targets

B, S, P = BOS_ID, SEP_ID, PAD_ID


def test_only_the_map_after_sep_plain_documents_whole_and_never_padding():
    # a pair that started before the window, a whole pair, a plain document with padding
    ids = torch.tensor([[7, S, 9, B, 11, 12, S, 13, 14, B, 20, 21, P, P, B, 22]])
    targets, crossed = supervised_targets(ids)
    expected = [IGNORE, 9, IGNORE, IGNORE, IGNORE, IGNORE, 13, 14, 1, 20, 21, IGNORE, IGNORE, 1, 22]
    assert targets.tolist() == [expected] and crossed == 1
    everything, _ = supervised_targets(ids, after_sep=False)
    assert everything.tolist() == [[t if t != P else IGNORE for t in ids[0, 1:].tolist()]]
    _, none = supervised_targets(ids[:, 3:])
    assert none == 0


def test_loss_ignores_the_obfuscated_half_as_a_target():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=64, max_seq_len=32))
    objective = OBJECTIVES.build({"name": "dobf"}, model, seed=0)
    ids = torch.tensor([[B, 10, 11, 12, S, 20, 21, B, 30, 31]])
    out = objective(Batch(ids))
    hidden = model(ids[:, :-1], causal=True)
    logp = model.logits(hidden).log_softmax(-1)[0]
    scored = [4, 5, 6, 7, 8]  # positions whose targets are 20, 21, <s>, 30, 31
    want = -torch.stack([logp[t, ids[0, t + 1]] for t in scored]).mean()
    assert torch.allclose(out.loss, want, atol=1e-5)
