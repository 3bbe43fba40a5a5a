"""metrics.jsonl's speed columns at any world size: tokens/s of the global batch, MFU per device."""

import pytest

from thrifty.train.metrics import FlopsCount, throughput


@pytest.mark.parametrize("world", [1, 2, 4])
def test_tokens_per_second_are_the_global_batch_and_mfu_is_per_device(world):
    flops = FlopsCount(1e6)  # FLOPs per token
    row = throughput(8192, 6000.0, 0.5, 4096.0, world, flops, peak=1e10)
    assert row["tokens_per_s"] == 4096.0  # the loop times the global batch's tokens
    assert row["mfu"] == pytest.approx(1e6 * 4096 / world / 1e10)
    assert row["flops"] == pytest.approx(1e6 * 8192)
