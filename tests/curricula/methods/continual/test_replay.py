"""Compute-equivalent replay (``curricula/methods/continual/replay.py``): every batch has the exact number of replay
blocks, the rounding carried across batches."""

import numpy as np

from curricula.methods import DataInfo, ReplayConfig, RunInfo


def replay_stream(n_new, n_old, x, batch, steps, seed):
    data = DataInfo(np.zeros(n_new + n_old, dtype=np.int64), ['d'])
    cur = ReplayConfig(replay=x, new_rows=n_new, seed=seed).build(data, RunInfo(batch, steps, 0))
    return np.concatenate(list(cur.batches(0)))


def test_every_batch_has_the_exact_number_of_replay_blocks():
    for x in (0.05, 0.25):
        stream = replay_stream(1000, 200, x, 16, 200, seed=3)
        per_batch = (stream.reshape(200, 16) >= 1000).sum(1)
        assert set(per_batch) <= {int(np.floor(16 * x)), int(np.ceil(16 * x))}  # 0/1 at 5 %, exactly 4 at 25 %
        cum = np.cumsum(per_batch) - 16 * x * np.arange(1, 201)
        assert np.all(np.abs(cum) < 1)  # rounding carried across batches
    zero = replay_stream(1000, 200, 0.0, 16, 50, seed=3)
    assert zero.max() < 1000
