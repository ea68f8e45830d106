"""The training sampler (``hf_trainer_ext/sampler.py``): the curriculum's global batches of its current epoch as row
indices, from the resumed step once, sized by the longest epoch; an epoch out of step with the curriculum is named.
(That Trainer's data loader iterates it is tested in test_compat.py.)"""

import numpy as np
import pytest

from curricula.methods.seam import EpochRecords, MethodError
from hf_trainer_ext.sampler import CurriculumSampler


def test_the_sampler_yields_the_current_epochs_batches_and_resumes_once(tiny_lfr):
    cur = tiny_lfr()  # 32 blocks, 8 per step: learn (4 steps), then focus (2 steps)
    cur.start_epoch(0)
    sampler = CurriculumSampler(cur)
    assert len(sampler) == 4 * 8  # the longest epoch's rows
    stream = np.concatenate(list(cur.batches(0))).tolist()
    assert list(sampler) == stream and sorted(stream) == list(range(32))
    sampler.start = 2  # a resume at the epoch's step 2: the batches from there, without replaying the first two
    assert list(sampler) == stream[16:]
    assert list(sampler) == stream  # then from the start again
    cur.end_epoch(EpochRecords(block_id=np.arange(32), domain_id=np.repeat([0, 1], 16), step=np.repeat([1, 2, 3, 4], 8),
                               loss=np.arange(32, dtype=np.float32)))
    cur.start_epoch(1)
    sampler.set_epoch(1)
    focus = list(sampler)
    assert len(focus) == 16 and sorted(focus) == list(range(16, 32))  # the focus keeps the 16 highest losses
    with pytest.raises(MethodError, match="Trainer is starting epoch 0 but the curriculum is at epoch 1"):
        sampler.set_epoch(0)
