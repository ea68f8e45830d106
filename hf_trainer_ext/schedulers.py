"""Torch glue for ``curricula.optim.schedules``: an ``LRScheduler`` driven by a pure schedule; an anneal trigger.

``ScheduleLR`` sets every param group's LR from ``schedule.lr(step)`` (absolute LRs; extra param groups keep their
ratio to the first group's base LR). Its ``state_dict`` carries the schedule's ``to_dict``, so resuming restores the
exact curve, including an anneal that was requested mid-run; everything in it is plain data, so Trainer's
``torch.load(..., weights_only=True)`` reads it.

``AnnealCallback`` starts the anneal of an ``Infinite`` schedule on demand, at a given step or when a file appears
(``touch OUTPUT_DIR/ANNEAL``), from any checkpoint and without knowing the token budget in advance.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.optim.lr_scheduler import LRScheduler
from transformers import TrainerCallback

from curricula.optim.schedules import Schedule, ScheduleError, schedule_from_dict

logger = logging.getLogger(__name__)

ANNEAL_FILE = "ANNEAL"


class ScheduleLR(LRScheduler):
    """Every param group's LR from a curricula schedule: group 0 gets ``schedule.lr(step)`` exactly, group ``i`` gets
    ``schedule.lr(step) * base_lr[i] / base_lr[0]`` (the optimizer's own LRs only set these ratios)."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule | Mapping, last_epoch: int = -1):
        self.schedule = schedule_from_dict(schedule)
        groups = optimizer.param_groups
        first = float(groups[0].get("initial_lr", groups[0]["lr"]))
        if len(groups) > 1 and first == 0:
            raise ScheduleError(
                "the optimizer's first param group has lr=0, so the other groups' LRs cannot be kept in proportion "
                "to it; give the first group a nonzero lr (only the ratios between group LRs are used)"
            )
        super().__init__(optimizer, last_epoch)

    def _lrs_at(self, step: int) -> list[float]:
        lr = self.schedule.lr(step)
        first = float(self.base_lrs[0])
        return [lr] + [lr * (float(b) / first) for b in self.base_lrs[1:]]

    def get_lr(self) -> list[float]:
        return self._lrs_at(self.last_epoch)

    def _get_closed_form_lr(self) -> list[float]:
        return self._lrs_at(self.last_epoch)

    def _apply(self) -> None:
        """Set the groups' LRs for the current step (after the schedule changed between steps)."""
        for group, lr in zip(self.optimizer.param_groups, self._lrs_at(self.last_epoch), strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    # ---- anneal on demand ----------------------------------------------------------------------------------------

    def request_anneal(self, step: int | None = None, anneal_steps: int | None = None) -> Schedule:
        """Anneal from ``step`` (default: now, the scheduler's current step) over ``anneal_steps`` (default: the
        schedule's). The new schedule is what ``state_dict`` saves from now on."""
        now = self.last_epoch
        step = now if step is None else step
        if step < now:
            raise ScheduleError(
                f"anneal from step {step} is in the past: the scheduler is at step {now}, so the LR would jump into "
                f"the middle of the anneal; request it at a step >= {now}"
            )
        self.schedule = self.schedule.with_anneal(step, anneal_steps)
        self._apply()
        return self.schedule

    # ---- checkpoints ---------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["schedule"] = self.schedule.to_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step and the checkpoint's schedule (with any anneal it had requested).

        The run's own schedule must be the checkpoint's, except that it may add an anneal the checkpoint had not
        requested (``--anneal_at`` on resume): that request is kept. Anything else differing is an error, because the
        LR would jump at the resumed step.
        """
        state = dict(state_dict)
        if "schedule" not in state:
            raise ScheduleError(
                "this scheduler state has no 'schedule' entry, so it was not saved by ScheduleLR; resume with the LR "
                "scheduler that wrote the checkpoint, or start a fresh schedule"
            )
        saved = schedule_from_dict(state.pop("schedule"))
        current = self.schedule
        if saved.without_anneal() != current.without_anneal():
            raise ScheduleError(
                f"the checkpoint was saved with schedule {saved.to_dict()} but this run builds "
                f"{current.to_dict()}; resume with the same schedule settings (only an anneal may be added on resume)"
            )
        step = int(state.get("last_epoch", self.last_epoch))
        if current.anneal_start is not None and saved.anneal_start is None:
            if current.anneal_start < step:
                raise ScheduleError(
                    f"this run asks to anneal from step {current.anneal_start}, but the checkpoint is at step {step}; "
                    f"the LR would jump into the middle of the anneal; request it at a step >= {step}"
                )
            schedule = current
        elif current.anneal_start is not None and current != saved:
            raise ScheduleError(
                f"the checkpoint's schedule anneals from step {saved.anneal_start}, this run's from step "
                f"{current.anneal_start}; drop the anneal request from this run to keep the checkpoint's"
            )
        else:
            schedule = saved
        super().load_state_dict(state)
        self.schedule = schedule
        self._apply()


def create_schedule_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule | Mapping, num_training_steps: int | None = None
) -> ScheduleLR:
    """A ``ScheduleLR`` for ``optimizer``. A dict schedule (from a recipe) may leave out ``max_lr`` (taken from the
    optimizer's first group's lr) and ``total_steps`` (``num_training_steps``; in ``stages``, each stage's length)."""
    if not isinstance(schedule, Schedule):
        defaults: dict[str, Any] = {"max_lr": float(optimizer.param_groups[0]["lr"])}
        if num_training_steps is not None:
            defaults["total_steps"] = int(num_training_steps)
        schedule = schedule_from_dict(schedule, defaults)
    return ScheduleLR(optimizer, schedule)


def _unwrap(lr_scheduler) -> ScheduleLR:
    sched = lr_scheduler
    while sched is not None and not isinstance(sched, ScheduleLR) and hasattr(sched, "scheduler"):
        sched = sched.scheduler  # accelerate's AcceleratedScheduler
    if not isinstance(sched, ScheduleLR):
        raise ScheduleError(
            f"AnnealCallback needs the trainer's LR scheduler to be a ScheduleLR over an Infinite schedule, got "
            f"{type(lr_scheduler).__name__}; build it with hf_trainer_ext.schedulers.create_schedule_scheduler"
        )
    return sched


def _max_over_ranks(value: int, device) -> int:
    """The largest ``value`` over all processes, so every rank starts the anneal at the same step."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        t = torch.tensor([value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())
    return value


class AnnealCallback(TrainerCallback):
    """Starts the anneal of the trainer's ``ScheduleLR`` on demand.

    * ``at_step``: anneal from that optimizer step (requested when training begins; a resumed run whose checkpoint
      already has this anneal is left as it is);
    * ``trigger_file``: after any optimizer step, if the file exists on any process the anneal starts at the next
      step; the file may hold a step number to start at instead. Every process agrees on the step (an all-reduce
      when distributed, every ``check_every`` steps).

    ``anneal_steps`` overrides the schedule's anneal length. With ``stop_after_anneal`` (default) training stops and
    saves a checkpoint once the anneal reached ``min_lr``. Steps are the scheduler's (``= state.global_step`` unless
    an optimizer step was skipped).
    """

    def __init__(self, at_step: int | None = None, trigger_file: str | os.PathLike | None = None,
                 anneal_steps: int | None = None, stop_after_anneal: bool = True, check_every: int = 1):
        if at_step is None and trigger_file is None:
            raise ScheduleError("AnnealCallback needs at_step or trigger_file (e.g. OUTPUT_DIR/ANNEAL)")
        if check_every < 1:
            raise ScheduleError(f"check_every={check_every} must be >= 1")
        self.at_step = at_step
        self.trigger_file = None if trigger_file is None else Path(trigger_file)
        self.anneal_steps = anneal_steps
        self.stop_after_anneal = stop_after_anneal
        self.check_every = check_every

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        sched = _unwrap(lr_scheduler)
        if self.at_step is None:
            return
        if sched.schedule.anneal_start is None:
            sched.request_anneal(self.at_step, self.anneal_steps)
            logger.info("LR anneal scheduled from step %d", self.at_step)
        elif sched.schedule.anneal_start != self.at_step:
            logger.warning("the resumed schedule already anneals from step %d; at_step=%d is ignored",
                           sched.schedule.anneal_start, self.at_step)

    def _file_request(self, now: int) -> int:
        """-1 if the trigger file is absent, else the step it asks for (its content, or ``now`` if empty)."""
        if self.trigger_file is None or not self.trigger_file.exists():
            return -1
        text = self.trigger_file.read_text().strip()
        if not text:
            return now
        try:
            return max(int(text), now)
        except ValueError:
            raise ScheduleError(
                f"{self.trigger_file} holds {text!r}; leave it empty to anneal now, or write a step number"
            ) from None

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        sched = _unwrap(lr_scheduler)
        now = sched.last_epoch
        if self.trigger_file is not None and sched.schedule.anneal_start is None and now % self.check_every == 0:
            requested = _max_over_ranks(self._file_request(now), getattr(args, "device", "cpu"))
            if requested >= 0:
                sched.request_anneal(requested, self.anneal_steps)
                logger.info("%s found: LR anneal from step %d", self.trigger_file, requested)
        end = sched.schedule.anneal_end
        if self.stop_after_anneal and end is not None and now >= end:
            control.should_training_stop = True
            control.should_save = True
        return control


def install_schedule(trainer, optimizer: torch.optim.Optimizer, num_training_steps: int) -> ScheduleLR:
    """``trainer.args.lr_schedule`` as the trainer's LR scheduler, with an ``AnnealCallback`` when the schedule can
    anneal on demand (``--anneal_at``, or the file ``OUTPUT_DIR/ANNEAL``)."""
    optimizer = optimizer if optimizer is not None else trainer.optimizer
    scheduler = create_schedule_scheduler(optimizer, trainer.args.lr_schedule, num_training_steps=num_training_steps)
    annealable = hasattr(scheduler.schedule, "anneal_start")
    if annealable and not any(isinstance(cb, AnnealCallback) for cb in trainer.callback_handler.callbacks):
        trigger = Path(trainer.args.output_dir) / "ANNEAL"
        trainer.add_callback(AnnealCallback(at_step=trainer.args.anneal_at, trigger_file=str(trigger)))
    return scheduler
