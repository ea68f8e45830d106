"""The runtime state of a curriculum run: plan + index table + policy, sized in optimizer steps.

Everything a trainer needs to drive a plan without knowing what the plan is: how many optimizer steps each plan
epoch takes (a focus epoch is shorter), where a global step falls in the plan (for resume), and the exact block order
of the current epoch. It is pure numpy/pyarrow and identical on every process, because every input to it (seed,
epoch index, gathered losses) is.

Padding: an epoch of ``k`` blocks is trained as ``ceil(k / global_batch)`` optimizer steps, so the last step has
``pad = steps * global_batch - k`` free slots. They are filled with blocks from the start of the order, encoded as
``block_id + n_blocks``; the data side turns such a slot into a row whose labels are all ignored, so the batch shape
stays fixed while every block is trained exactly once per epoch and the loss is unchanged.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curricula.curriculum.index_table import IndexTable
from curricula.curriculum.lfr import LFRPolicy
from curricula.curriculum.plan import Plan, PhaseEpoch

STATE_FILE = "state.json"
TABLE_FILE = "table.arrow"


@dataclass
class CurriculumState:
    plan: Plan
    table: IndexTable
    seed: int
    global_batch: int  # blocks per optimizer step over all processes: per_device * world_size * grad_accum
    epoch: int = 0  # the plan epoch being trained (PhaseEpoch.index)
    policy: LFRPolicy = field(init=False)

    def __post_init__(self):
        if self.global_batch < 1:
            raise ValueError(f"global_batch={self.global_batch} must be >= 1")
        self.policy = LFRPolicy(self.plan)
        self.epochs: list[PhaseEpoch] = self.plan.epochs()
        self.blocks_per_epoch: list[int] = self.plan.blocks_per_epoch(self.table.n)
        self.steps_per_epoch: list[int] = [max(1, math.ceil(b / self.global_batch)) for b in self.blocks_per_epoch]
        self.step_boundaries = np.concatenate([[0], np.cumsum(self.steps_per_epoch)]).astype(np.int64)

    # ---- sizes --------------------------------------------------------------------------------------------------

    @property
    def n_blocks(self) -> int:
        return self.table.n

    @property
    def total_steps(self) -> int:
        return int(self.step_boundaries[-1])

    @property
    def max_epoch_slots(self) -> int:
        """Sampler length: the longest epoch in slots (every epoch is cut short at its own step count)."""
        return max(self.steps_per_epoch) * self.global_batch

    def position(self, global_step: int) -> tuple[int, int]:
        """(plan epoch, optimizer steps already done in it) after ``global_step`` steps."""
        if not 0 <= global_step <= self.total_steps:
            raise ValueError(f"step {global_step} is outside the plan's {self.total_steps} steps")
        e = int(np.searchsorted(self.step_boundaries, global_step, side="right") - 1)
        e = min(e, len(self.epochs) - 1)
        return e, int(global_step - self.step_boundaries[e])

    def epoch_ends_at(self, global_step: int) -> bool:
        return global_step == self.step_boundaries[self.epoch + 1]

    @property
    def current(self) -> PhaseEpoch:
        return self.epochs[self.epoch]

    # ---- the epoch's blocks -------------------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> np.ndarray:
        """Decide the block set of ``epoch`` (a focus phase decides here, from the table) and make it current."""
        self.epoch = epoch
        return self.policy.eligible_for(self.epochs[epoch], self.table)

    def epoch_order(self) -> np.ndarray:
        """The current epoch's slots: its blocks in a (seed, epoch)-deterministic order, then pad slots."""
        order = self.table.order(self.seed, self.epoch)
        slots = self.steps_per_epoch[self.epoch] * self.global_batch
        if len(order) > slots:  # more kept than planned (only when many losses are non-finite): train the first
            order = order[:slots]
        pad = slots - len(order)
        return np.concatenate([order, np.resize(order, pad) + self.n_blocks]) if pad else order

    def record_epoch(self, block_ids: np.ndarray, losses: np.ndarray) -> None:
        """Every loss of the finished epoch goes into the table (before the next focus decision reads it)."""
        self.table.update(block_ids, losses, self.epoch)

    # ---- persistence --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "plan": self.plan.to_dict(),
            "seed": self.seed,
            "global_batch": self.global_batch,
            "epoch": self.epoch,
            "policy": self.policy.state_dict(),
        }

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.table.save(directory / TABLE_FILE)
        tmp = directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state_dict(), indent=2, sort_keys=True))
        os.replace(tmp, directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path, plan: Plan, global_batch: int) -> "CurriculumState":
        directory = Path(directory)
        saved = json.loads((directory / STATE_FILE).read_text())
        if saved["plan"] != plan.to_dict():
            raise ValueError(
                f"{directory} was saved by a run with plan {saved['plan'].get('name')!r} and different phases; "
                "resume with the same curriculum and parameters"
            )
        if saved["global_batch"] != global_batch:
            raise ValueError(
                f"{directory} was saved with {saved['global_batch']} blocks per optimizer step, this run has "
                f"{global_batch}; resume with the same per-device batch size x processes x gradient accumulation"
            )
        state = cls(plan, IndexTable.load(directory / TABLE_FILE), saved["seed"], global_batch, saved["epoch"])
        state.policy.load_state_dict(saved["policy"])
        return state
