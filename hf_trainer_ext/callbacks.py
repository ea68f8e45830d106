"""Callbacks: plan-epoch boundaries and checkpoints (``CurriculumCallback``), per-domain perplexity logging."""

from __future__ import annotations

import os

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_trainer_ext.recorder import perplexity


class CurriculumCallback(TrainerCallback):
    """Ends each Trainer epoch where the plan epoch ends, runs the phase boundary, saves the state with checkpoints."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        cur = self.trainer.curriculum
        if cur is not None and cur.epoch_ends_at(state.global_step):
            control.should_epoch_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        cur = self.trainer.curriculum
        # Trainer also ends an epoch when training stops early; the plan epoch then stays open (its records so far
        # are in the last checkpoint) and the boundary runs only where the plan epoch really ends
        if cur is not None and cur.epoch_ends_at(state.global_step):
            self.trainer.finish_plan_epoch()

    def on_save(self, args, state, control, **kwargs):
        checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        self.trainer.save_curriculum_checkpoint(checkpoint)


class PerplexityLoggerCallback(TrainerCallback):
    """Reports training perplexity per domain (``train_ppl/<domain>``) through ``Trainer.log`` at logging steps,
    so every ``report_to`` integration sees it. Needs ``cb.trainer`` (callbacks are not given the trainer)."""

    def __init__(self, trainer=None):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if not control.should_log or self.trainer is None or self.trainer.recorder is None:
            return
        losses = self.trainer.recorder.domain_losses(self.trainer.accelerator)
        if losses:
            names = self.trainer.domain_names
            logs = {f"train_ppl/{names[d] if d < len(names) else d}": perplexity(v) for d, v in losses.items()}
            self.trainer.log_extra(logs)
