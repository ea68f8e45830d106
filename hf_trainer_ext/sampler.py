"""The dynamic sampler: the current plan epoch's slots, from the curriculum state's Arrow index table.

The order depends only on (seed, plan epoch, eligible set), so every process yields the identical sequence and
accelerate's ``BatchSamplerShard`` hands each rank its own batches. The table is rewritten between Trainer epochs
(one Trainer epoch = one plan epoch), never while the data loader is reading ahead.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler

from curricula.curriculum.state import CurriculumState


class CurriculumSampler(Sampler[int]):
    def __init__(self, state: CurriculumState):
        self.state = state

    def __len__(self) -> int:
        # Trainer reads this once per train(): the longest epoch; shorter (focus) epochs stop at their own step count
        return self.state.max_epoch_slots

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.state.epoch:
            raise RuntimeError(
                f"Trainer is starting epoch {epoch} but the curriculum is at plan epoch {self.state.epoch}; "
                "this means Trainer's epoch loop and the plan went out of step (please report it)"
            )

    def __iter__(self) -> Iterator[int]:
        return iter(self.state.epoch_order().tolist())
