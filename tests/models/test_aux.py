"""The auxiliary-loss path: layers emit terms, the loop adds them to the loss it backpropagates."""

from __future__ import annotations

import torch

from thrifty.losses import LossTerm
from thrifty.models import aux
from thrifty.objectives import Output
from thrifty.train.global_loss import global_loss


def term(value: float, count: float = 4.0) -> LossTerm:
    return LossTerm(torch.tensor(value * count, requires_grad=True), torch.tensor(count))


def test_emit_outside_collect_or_without_gradient_does_nothing():
    aux.emit("balance", term(1.0))  # no collector: nothing to hand it to
    with aux.collect() as emitted:
        with torch.no_grad():  # a frozen teacher's forward pass
            aux.emit("balance", term(1.0))
        assert not aux.collecting() or torch.is_grad_enabled()
    assert emitted.terms == {}


def test_terms_of_one_name_add_up_over_layers_and_metrics_average():
    with aux.collect() as emitted:
        aux.emit("balance", term(1.0), {"dropped": 0.1})
        aux.emit("balance", term(2.0), {"dropped": 0.3})
    assert emitted.terms["balance"].value.item() == 3.0
    assert abs(emitted.metrics["dropped"] - 0.2) < 1e-9


def test_all_sum_is_the_collectors_own():
    t = torch.ones(3)
    assert aux.all_sum(t) is t
    with aux.collect(all_sum=lambda x: 2 * x):
        assert aux.all_sum(t).tolist() == [2.0, 2.0, 2.0]


def test_aux_terms_are_backpropagated_but_not_reported_as_the_loss():
    lm = term(2.0)
    balance = LossTerm(torch.tensor(0.5, requires_grad=True), torch.tensor(1.0), weight=0.1)
    out = Output(lm.value, terms={"lm": lm})
    loss, value, aux_values = global_loss(out, 1, {"balance": balance})
    assert value == 2.0 and abs(aux_values["balance"] - 0.05) < 1e-9
    assert abs(loss.item() - 2.05) < 1e-6
    loss.backward()
    assert abs(balance.total.grad.item() - 0.1) < 1e-6
    # an objective without terms (a plain loss) gets the aux terms added all the same
    plain = Output(torch.tensor(1.0, requires_grad=True))
    loss, value, _ = global_loss(plain, 1, {"balance": balance})
    assert value == 1.0 and abs(loss.item() - 1.05) < 1e-6
