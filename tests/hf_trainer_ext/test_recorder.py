"""BlockLossRecorder: records in preallocated buffers, kept only when asked, sums for the perplexity logger."""

import numpy as np
import torch

from hf_trainer_ext.recorder import BlockLossRecorder


def test_records_survive_growth_and_clear_keeps_buffers():
    rec = BlockLossRecorder(3)
    rec.reserve(4)
    for step in range(1, 6):  # 15 records: grows past the reservation
        rec.add(torch.tensor([3 * step, 3 * step + 1, -1]), torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 9.0]), step)
    out = rec.gather(None)
    assert out["block_id"].tolist() == [b for s in range(1, 6) for b in (3 * s, 3 * s + 1)]  # pad rows (-1) dropped
    assert out["step"].tolist() == [s for s in range(1, 6) for _ in range(2)]
    buf = rec._cols[0]
    rec.clear()
    assert rec.gather(None)["block_id"].size == 0 and rec._cols[0] is buf
    rec.load({"block_id": np.array([7]), "domain_id": np.array([1]), "step": np.array([2]), "loss": np.array([0.5])})
    assert rec.gather(None)["loss"].tolist() == [0.5]


def test_without_keep_records_only_domain_sums():
    rec = BlockLossRecorder(2, keep_records=False)
    rec.add(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1.0, float("nan")]), 1)
    assert rec._cols is None and rec.gather(None)["block_id"].size == 0
    assert rec.domain_losses(None) == {0: 1.0}  # the NaN block is not averaged in
