"""The one training sampler: the global batches of the curriculum's current epoch, as row indices.

Every process iterates the identical stream (it depends only on the curriculum's seed and state) and accelerate's
``BatchSamplerShard`` hands each rank its own per-device batches. After a resume inside an epoch the stream starts at
the resumed step (``start``, set by ``TrainerCompat.get_resumed_dataloader``): no batch is replayed. Batches are numpy arrays turned into Python ints
one global batch at a time: no per-block list of the whole epoch is ever built. The curriculum changes its data only
between Trainer epochs (one Trainer epoch = one curriculum epoch), never while the data loader reads ahead, except
for online methods that read weights a fixed number of steps old (see ``curricula.methods.doremi.online``).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler

from curricula.methods.seam import Curriculum, MethodError


class CurriculumSampler(Sampler[int]):
    def __init__(self, curriculum: Curriculum):
        self.curriculum = curriculum
        self.start = 0  # the step of the current epoch the next iteration starts at (a resume), then 0 again

    def __len__(self) -> int:
        # Trainer reads this once per train(): the longest epoch; shorter (focus) epochs stop at their own step count
        return max(self.curriculum.epoch_steps()) * self.curriculum.run.global_batch

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.curriculum.epoch:
            raise MethodError(
                f"Trainer is starting epoch {epoch} but the curriculum is at epoch {self.curriculum.epoch}; "
                "this means Trainer's epoch loop and the curriculum went out of step (please report it)"
            )

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        for batch in self.curriculum.batches(self.curriculum.epoch, start):
            yield from batch.tolist()
