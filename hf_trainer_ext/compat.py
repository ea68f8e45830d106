"""Every override of a private ``transformers.Trainer`` method, in one place, each saying why.

``CurriculumTrainer`` inherits ``TrainerCompat`` before ``Trainer``. Each override delegates to a public method of
the trainer (``curriculum_sampler``, ``resume_position``, ``save_curriculum_checkpoint``, ``finish_checkpoint``), so
what the curriculum does is written once, in ``trainer.py``, and what depends on Trainer's internals is here.
``tests/hf_trainer_ext/test_compat.py`` fails when a transformers release changes what these rely on (names, signatures, the order of
``set_initial_training_values``' tuple, where ``_save_checkpoint`` rotates). Checked against transformers 5.25.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from curricula.run_layout import disk_full, is_disk_full
from hf_trainer_ext.data import BLOCK_COLUMNS

#: ``set_initial_training_values`` returns (num_train_epochs, num_update_steps_per_epoch, num_examples,
#: num_train_samples, total_train_batch_size, steps_in_epoch, max_steps)
NUM_TRAIN_EPOCHS, NUM_TRAIN_SAMPLES, TOTAL_TRAIN_BATCH_SIZE, MAX_STEPS = 0, 3, 4, 6


def running_loss_sum(trainer) -> float:
    """The training loss summed over the steps of this ``train()`` call so far: Trainer keeps it in
    ``_total_loss_scalar`` (drained at logging steps) plus ``_tr_loss`` (on device since the last logging step).
    Called only while training (checkpoints), when Trainer has both; ``tests/hf_trainer_ext/test_compat.py`` pins them."""
    return float(trainer._total_loss_scalar) + float(trainer._tr_loss.item())


class TrainerCompat:
    def _set_signature_columns_if_needed(self):
        # Trainer drops dataset columns the model's forward does not name; block ids must reach compute_loss (which
        # removes them before the forward), also for HF evaluation datasets
        super()._set_signature_columns_if_needed()
        for c in BLOCK_COLUMNS:
            if c not in self._signature_columns:
                self._signature_columns.append(c)

    def _get_train_sampler(self, train_dataset=None):
        # the only way to give Trainer's DataLoader (and accelerate's sharding, and resume's batch skipping) our order
        sampler = self.curriculum_sampler()
        return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

    def set_initial_training_values(self, args, dataloader):
        # a curriculum sizes the run: as many Trainer epochs as curriculum epochs, and max_steps = its real step
        # count (focus epochs are shorter than the sampler's length), so the LR schedule ends where the run ends
        values = list(super().set_initial_training_values(args, dataloader))
        cur = self.curriculum
        if cur is not None:
            values[NUM_TRAIN_EPOCHS] = len(cur.epoch_steps())
            values[MAX_STEPS] = cur.total_steps
            values[NUM_TRAIN_SAMPLES] = cur.total_steps * values[TOTAL_TRAIN_BATCH_SIZE]
        return tuple(values)

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint,
                             trial):
        # Trainer assumes equal epochs to place a resumed global step; a curriculum's epochs are not equal
        epochs_trained, steps = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial)
        if self.curriculum is not None and resume_from_checkpoint is not None:
            epochs_trained, steps = self.resume_position(self.state.global_step)
        return epochs_trained, steps

    def get_resumed_dataloader(self, dataloader, num_batches):
        # (public since transformers 5.25) Trainer would replay the sampler and drop the first batches; a curriculum's
        # stream starts at the resumed step instead, from the state its checkpoint saved (O(1), not O(step))
        if self.curriculum is None:
            return super().get_resumed_dataloader(dataloader, num_batches)
        source = self._stream if self._stream is not None else self._sampler  # what this dataloader reads
        source.start = num_batches // self.args.gradient_accumulation_steps
        return dataloader

    def _save_checkpoint(self, model, trial):
        # Trainer rotates older checkpoints away inside _save_checkpoint, before the on_save callbacks run: with
        # save_total_limit=1 a crash while the curriculum state is written would leave no resumable checkpoint. So the
        # rotation waits until the curriculum state and the completeness marker are on disk. A full disk surfaces from
        # torch.save as "[enforce fail at inline_container.cc] ... unexpected pos": say what it is and where.
        limit = self.args.save_total_limit
        self.args.save_total_limit = None
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        with self.watchdog.phase("save checkpoint"):  # a save may outlast the stall bound (hf_trainer_ext/watchdog.py)
            try:
                super()._save_checkpoint(model, trial)
            except (OSError, RuntimeError) as err:
                if is_disk_full(err):
                    raise disk_full(Path(folder), err) from err
                raise
            finally:
                self.args.save_total_limit = limit
            self.finish_checkpoint(folder)

    def _push_from_checkpoint(self, checkpoint_folder):
        # Trainer starts a checkpoint's background upload inside _save_checkpoint, before the curriculum state would
        # be written: write it (and the completeness marker) first, so a pushed checkpoint can resume
        self.save_curriculum_checkpoint(checkpoint_folder)
        self.accelerator.wait_for_everyone()  # every process's RNG state is on disk before the marker lists it
        self.mark_checkpoint_complete(checkpoint_folder)
        super()._push_from_checkpoint(checkpoint_folder)
