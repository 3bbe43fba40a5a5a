"""Pathway metrics of MoE routing (Li, Fan & Zhou 2025): the card's invariants."""

from __future__ import annotations

import torch

from thrifty.eval.pathways import (
    SEP,
    consistency,
    edit_distance,
    mean_pairwise_distance,
    pathway,
    sample_routes,
)


def test_edit_distance_counts_insertions_deletions_and_substitutions():
    assert edit_distance(list(b"kitten"), list(b"sitting")) == 3
    assert edit_distance([], [1, 2]) == 2
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0


def test_a_pathway_lists_each_layers_experts_between_separators():
    assert pathway(torch.tensor([[0, 3], [1, 2]])) == [0, 3, SEP, 1, 2]


def test_identical_pathways_are_at_distance_zero_and_differences_count():
    same = torch.tensor([[[0, 1], [2, 3]]] * 4)
    assert mean_pairwise_distance(same) == 0.0
    one_off = same.clone()
    one_off[0, 1] = torch.tensor([2, 4])  # one sample differs in one expert of one layer
    assert mean_pairwise_distance(one_off) == 3 / 6  # 3 of the 6 pairs differ by one symbol


def test_samples_take_the_top_k_of_their_mean_router_probabilities():
    probs = [torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]])]  # one sample, two tokens
    experts, weights = sample_routes(probs, 2)
    assert experts.tolist() == [[[0, 2]]]  # means 0.4, 0.2, 0.4
    torch.testing.assert_close(weights, torch.tensor([[[0.5, 0.5]]]))


def test_consistency_is_one_for_parallel_layers_and_survives_consistent_relabelling():
    g = torch.Generator().manual_seed(0)
    router = torch.randn(4, 8, generator=g)
    experts = torch.tensor([[[0, 1], [0, 1], [0, 1]]])
    weights = torch.full((1, 3, 2), 0.5)
    assert abs(consistency(experts, weights, [router] * 3) - 1.0) < 1e-6
    routers = [torch.randn(4, 8, generator=g) for _ in range(3)]
    experts = torch.tensor([[[0, 2], [1, 3], [0, 3]], [[1, 2], [0, 1], [2, 3]]])
    weights = torch.rand(2, 3, 2, generator=g)
    before = consistency(experts, weights, routers)
    perm = torch.tensor([2, 0, 3, 1])  # expert j is now called perm[j], in every sample
    relabelled = [r[perm.argsort()] for r in routers]
    assert abs(consistency(perm[experts], weights, relabelled) - before) < 1e-6
