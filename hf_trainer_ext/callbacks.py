"""The one callback: curriculum epoch boundaries, per-step observation, per-domain perplexity logging."""

from __future__ import annotations

from transformers import TrainerCallback


class CurriculumCallback(TrainerCallback):
    """Drives the trainer's curriculum from Trainer's loop (callbacks are not given the trainer, so it holds one).

    * after every optimizer step: the curriculum observes the global batch's per-domain statistics (methods that
      learn online: Group DRO, one-run DoReMi, the online mixers); the Trainer epoch stops where the curriculum epoch
      ends (per-domain training perplexity and the curriculum's values join Trainer's own training logs:
      ``CurriculumTrainer.log``);
    * at the end of a Trainer epoch that is a curriculum epoch's end: the boundary (``finish_epoch``). Trainer also
      ends an epoch when training stops early; the curriculum epoch then stays open (its records are in the last
      checkpoint) and the boundary runs only where it really ends.
    """

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        # a resume from a checkpoint saved at an epoch's last step: the uninterrupted run evaluated after that step's
        # boundary (eval_strategy epoch), which the checkpoint does not hold yet
        t = self.trainer
        if getattr(t, "resumed_at_boundary", False) and str(args.eval_strategy) in ("epoch", "IntervalStrategy.EPOCH"):
            t.resumed_at_boundary = False
            t.evaluate()

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        cur = t.curriculum
        if cur is not None:
            t.observe_step()
            if cur.epoch_ends_at(state.global_step):
                control.should_epoch_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        cur = self.trainer.curriculum
        if cur is not None and cur.epoch_ends_at(state.global_step):
            self.trainer.finish_epoch()
