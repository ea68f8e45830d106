"""Learning-rate schedules as pure, serialisable functions of the optimizer step.

Why stateless: a schedule that is only ``lr(step)`` plus a few numbers cannot drift from its checkpoint. The bugs of
gpt-neox's infinite-LR PR (#1194) came from state kept outside the serialised fields (phase boundaries missing from
``state_dict``) and from one branch skipping the ``min_lr`` clamp. Here every phase boundary is a dataclass field,
``to_dict`` writes all of them (defaults resolved), and ``schedule_from_dict`` rebuilds an equal schedule, so a resumed
run, a recipe file and a checkpoint all describe the same LR curve, including an anneal requested mid-run.

Every ``lr(step)`` returns the absolute learning rate (not a multiplier) for the update that follows ``step`` finished
optimizer steps, the convention of ``torch.optim.lr_scheduler``: the first update uses ``lr(0)``.

Schedules (Ibrahim et al. 2024, "Simple and Scalable Strategies to Continually Pre-train LLMs"):

* ``Constant(lr)``;
* ``WarmupCosine``: linear warmup, cosine decay to ``min_lr`` (default ``0.1 * max_lr``), then ``min_lr``;
* ``Stages``: schedules played one after another, each on its own local step; re-warming and re-decaying per dataset
  stage is ``Stages`` of ``WarmupCosine`` (``Stages.rewarm``);
* ``Infinite``: warmup, cooldown to a constant LR (cosine or inverse-sqrt), constant for as long as the run goes, and an
  anneal to ``min_lr`` that can be requested at any step (``with_anneal``) without knowing the budget in advance.

Pure Python/numpy (matplotlib only inside ``plot_schedules``), so recipes and analysis can use it without torch; the
torch glue is ``hf_trainer_ext.schedulers``.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_right
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
from curricula.errors import CurriculaError

COOLDOWNS: tuple[str, ...] = ("cosine", "inv_sqrt")
ANNEALS: tuple[str, ...] = ("exponential", "linear")
DEFAULT_WARMUP_FRACTION = 0.01  # warmup_steps = ceil(1% of total_steps) unless given
DEFAULT_MIN_LR_RATIO = 0.1  # min_lr = 0.1 * max_lr unless given


class ScheduleError(CurriculaError):
    """Bad schedule input; the message names the problem and the fix."""


# ---- validation helpers ----------------------------------------------------------------------------------------------


def _steps(name: str, value: Any, minimum: int = 0) -> int:
    """A step count: an integer (numpy integers welcome, floats and bools not) of at least ``minimum``."""
    if isinstance(value, bool):
        raise ScheduleError(f"{name}={value!r} must be an integer number of optimizer steps")
    try:
        v = operator.index(value)
    except TypeError:
        raise ScheduleError(f"{name}={value!r} must be an integer number of optimizer steps") from None
    if v < minimum:
        raise ScheduleError(f"{name}={v} must be >= {minimum}")
    return int(v)


def _rate(name: str, value: Any) -> float:
    """A learning rate: a finite number >= 0. Numeric strings are accepted because YAML reads ``3e-4`` as one."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ScheduleError(f"{name}={value!r} must be a number (a learning rate)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ScheduleError(f"{name}={value!r} must be a number (a learning rate)")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ScheduleError(f"{name}={v} must be a finite learning rate >= 0")
    return v


def _step_arg(step: Any) -> int:
    if isinstance(step, bool):
        raise ScheduleError(f"step={step!r} must be an integer optimizer step")
    try:
        s = operator.index(step)
    except TypeError:
        raise ScheduleError(f"step={step!r} must be an integer optimizer step") from None
    if s < 0:
        raise ScheduleError(f"step={s} must be >= 0 (steps count finished optimizer steps)")
    return int(s)


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalise a field of a frozen dataclass in __post_init__


# ---- the schedules ---------------------------------------------------------------------------------------------------

SCHEDULES: dict[str, type["Schedule"]] = {}


def _register(cls):
    SCHEDULES[cls.type_name] = cls
    return cls


class Schedule:
    """A learning rate as a pure function of the optimizer step, serialisable with ``to_dict``."""

    type_name: ClassVar[str] = ""

    def lr(self, step: int) -> float:
        raise NotImplementedError

    def lrs(self, steps: Sequence[int] | np.ndarray) -> np.ndarray:
        """``lr`` at many steps (for plots and checks)."""
        return np.array([self.lr(int(s)) for s in steps], dtype=np.float64)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"type": self.type_name}
        for f in fields(self):  # type: ignore[arg-type]
            d[f.name] = getattr(self, f.name)
        return d

    # anneal on demand; only schedules with a constant phase (Infinite, or Stages ending in one) support it
    @property
    def anneal_start(self) -> int | None:
        return None

    @property
    def anneal_end(self) -> int | None:
        """The step from which a requested anneal holds ``min_lr`` (None while no anneal is requested)."""
        return None

    def with_anneal(self, start_step: int, anneal_steps: int | None = None) -> "Schedule":
        raise ScheduleError(
            f"a {type(self).__name__} schedule has no anneal phase to start on demand; "
            "use an Infinite schedule (warmup -> cooldown -> constant -> anneal) to anneal from any step"
        )

    def without_anneal(self) -> "Schedule":
        """The same schedule with no anneal requested (used to compare a checkpoint's schedule with a run's)."""
        return self

    def boundaries(self) -> dict[str, int]:
        """Named steps where a phase begins (for plots and logs)."""
        return {}


@_register
@dataclass(frozen=True, init=False)
class Constant(Schedule):
    """The same learning rate at every step: ``Constant(lr)``."""

    value: float
    type_name: ClassVar[str] = "constant"

    def __init__(self, lr: float):
        _set(self, "value", _rate("lr", lr))

    def lr(self, step: int) -> float:
        _step_arg(step)
        return self.value

    def to_dict(self) -> dict:
        return {"type": self.type_name, "lr": self.value}


@_register
@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup ``start_lr -> max_lr`` over ``warmup_steps``, cosine ``max_lr -> min_lr`` until ``total_steps``,
    then ``min_lr``.

    ``lr(s) = start + (max - start) * s / W`` for ``s < W``;
    ``lr(s) = min + (max - min) * (1 + cos(pi * (s - W) / (T - W))) / 2`` for ``W <= s <= T``; ``min`` after ``T``.
    Defaults: ``W = ceil(1% of T)`` (at most ``T - 1``), ``min_lr = 0.1 * max_lr``. Both are resolved at construction,
    so ``to_dict`` records the numbers actually used.
    """

    max_lr: float
    total_steps: int
    warmup_steps: int | None = None
    min_lr: float | None = None
    start_lr: float = 0.0
    type_name: ClassVar[str] = "warmup_cosine"

    def __post_init__(self):
        max_lr = _rate("max_lr", self.max_lr)
        total = _steps("total_steps", self.total_steps, minimum=1)
        if self.warmup_steps is None:
            warmup = min(-(-total // 100), total - 1)  # ceil(1%), leaving at least one decay step
        else:
            warmup = _steps("warmup_steps", self.warmup_steps)
            if warmup >= total:
                raise ScheduleError(
                    f"warmup_steps={warmup} must be < total_steps={total}: the cosine decay needs at least one step; "
                    "shorten the warmup or lengthen the schedule"
                )
        min_lr = DEFAULT_MIN_LR_RATIO * max_lr if self.min_lr is None else _rate("min_lr", self.min_lr)
        start_lr = _rate("start_lr", self.start_lr)
        if min_lr > max_lr:
            raise ScheduleError(
                f"min_lr={min_lr} > max_lr={max_lr}: the decay would raise the LR; need min_lr <= max_lr"
            )
        if start_lr > max_lr:
            raise ScheduleError(
                f"start_lr={start_lr} > max_lr={max_lr}: the warmup would lower the LR; need start_lr <= max_lr"
            )
        for name, value in (("max_lr", max_lr), ("total_steps", total), ("warmup_steps", warmup),
                            ("min_lr", min_lr), ("start_lr", start_lr)):
            _set(self, name, value)

    def lr(self, step: int) -> float:
        s = _step_arg(step)
        w, t = self.warmup_steps, self.total_steps
        if s < w:
            return self.start_lr + (self.max_lr - self.start_lr) * s / w
        if s >= t:
            return self.min_lr
        progress = (s - w) / (t - w)
        return self.min_lr + (self.max_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def boundaries(self) -> dict[str, int]:
        return {"decay": self.warmup_steps, "end": self.total_steps}


@_register
@dataclass(frozen=True)
class Stages(Schedule):
    """Schedules played one after another: stage ``i`` lasts ``lengths[i]`` steps and sees its own local step
    (``step - start of stage i``). After the last stage's length the last schedule simply continues (a decayed cosine
    stays at its ``min_lr``, an Infinite one stays constant).

    Re-warming and re-decaying per dataset stage (Ibrahim et al. 2024) is ``Stages.rewarm(max_lr, lengths)``.
    """

    schedules: tuple[Schedule, ...]
    lengths: tuple[int, ...]
    type_name: ClassVar[str] = "stages"

    def __post_init__(self):
        scheds = tuple(schedule_from_dict(s) for s in self.schedules)
        lengths = tuple(self.lengths)
        if not scheds:
            raise ScheduleError("Stages needs at least one stage; give schedules=[...] and lengths=[...]")
        if len(scheds) != len(lengths):
            raise ScheduleError(
                f"Stages has {len(scheds)} schedules but {len(lengths)} lengths; give one length per stage"
            )
        checked = []
        for i, (sched, length) in enumerate(zip(scheds, lengths)):
            if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
                raise ScheduleError(f"stage {i}: length={length!r} must be an integer number of optimizer steps")
            if length <= 0:
                raise ScheduleError(
                    f"stage {i} has no steps (length={int(length)}): every stage needs at least one optimizer step; "
                    "drop the stage or give it a positive length"
                )
            if isinstance(sched, WarmupCosine) and sched.total_steps > length:
                raise ScheduleError(
                    f"stage {i}: its WarmupCosine decays over total_steps={sched.total_steps} but the stage lasts "
                    f"{int(length)} steps, so the LR would never reach min_lr; set total_steps={int(length)} "
                    "(Stages.rewarm does this)"
                )
            checked.append(int(length))
        _set(self, "schedules", scheds)
        _set(self, "lengths", tuple(checked))

    @property
    def starts(self) -> tuple[int, ...]:
        """Global step at which each stage begins."""
        return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.lengths[:-1])]))

    @property
    def total_steps(self) -> int:
        return sum(self.lengths)

    def stage_of(self, step: int) -> tuple[int, int]:
        """(stage index, local step) of a global step."""
        s = _step_arg(step)
        i = bisect_right(self.starts, s) - 1
        return i, s - self.starts[i]

    def lr(self, step: int) -> float:
        i, local = self.stage_of(step)
        return self.schedules[i].lr(local)

    def to_dict(self) -> dict:
        return {"type": self.type_name, "schedules": [s.to_dict() for s in self.schedules],
                "lengths": list(self.lengths)}

    @property
    def anneal_start(self) -> int | None:
        local = self.schedules[-1].anneal_start
        return None if local is None else self.starts[-1] + local

    @property
    def anneal_end(self) -> int | None:
        local = self.schedules[-1].anneal_end
        return None if local is None else self.starts[-1] + local

    def with_anneal(self, start_step: int, anneal_steps: int | None = None) -> "Stages":
        """Anneal the last stage (it must be an Infinite schedule) from global step ``start_step``."""
        start = _steps("anneal start", start_step)
        first = self.starts[-1]
        if start < first:
            raise ScheduleError(
                f"anneal start {start} falls before the last stage, which begins at step {first}; only the last "
                f"stage can anneal, so request it at a step >= {first}"
            )
        try:
            last = self.schedules[-1].with_anneal(start - first, anneal_steps)
        except ScheduleError as e:
            raise ScheduleError(
                f"last stage (begins at global step {first}; steps below are local to it): {e}"
            ) from None
        return replace(self, schedules=self.schedules[:-1] + (last,))

    def without_anneal(self) -> "Stages":
        return replace(self, schedules=self.schedules[:-1] + (self.schedules[-1].without_anneal(),))

    def boundaries(self) -> dict[str, int]:
        return {f"stage {i}": start for i, start in enumerate(self.starts)}

    @classmethod
    def rewarm(cls, max_lr: float, lengths: Sequence[int], warmup_steps: int | None = None,
               min_lr: float | None = None, start_lr: float = 0.0) -> "Stages":
        """Re-warm and re-decay per stage: a ``WarmupCosine`` over each stage's own length (each stage warms up from
        ``start_lr``; pass ``start_lr=min_lr`` to re-warm from where the previous stage ended)."""
        lengths = list(lengths)
        for i, length in enumerate(lengths):
            if isinstance(length, (int, np.integer)) and not isinstance(length, bool) and length <= 0:
                raise ScheduleError(
                    f"stage {i} has no steps (length={int(length)}): every stage needs at least one optimizer step; "
                    "drop the stage or give it a positive length"
                )
        return cls(tuple(WarmupCosine(max_lr, n, warmup_steps, min_lr, start_lr) for n in lengths), tuple(lengths))


@_register
@dataclass(frozen=True)
class Infinite(Schedule):
    """The infinite schedule of Ibrahim et al. (2024): warmup, cooldown, constant, and an anneal on demand.

    With ``W = warmup_steps``, ``C = cooldown_steps``, ``P = W + C`` (the constant phase begins), ``A = anneal_start``,
    ``N = anneal_steps``:

    * warmup, ``s < W``: ``max_lr * s / W``;
    * cooldown, ``W <= s < P``, with ``c = s - W``:

      - ``cosine``: ``constant + (max - constant) * (1 + cos(pi * c / C)) / 2``;
      - ``inv_sqrt``: ``max + (constant - max) * h(c) / h(C)`` with ``h(x) = 1 / sqrt(1 + x / timescale) - 1``.
        This is the paper's infinite inverse-square-root cooldown (and gpt-neox #1194's ``infinite_inv_sqrt``) with its
        ``alpha`` written as ``1 / timescale`` so the timescale is in steps: ``h(0) = 0`` gives ``max_lr`` at the start,
        the ``h(c) / h(C)`` rescaling gives exactly ``constant_lr`` at the end, and in between the LR falls like
        ``max / sqrt(1 + c / timescale)`` (fast at first, then slowly; a small timescale front-loads the drop);

    * constant, ``s >= P``: ``constant_lr``, for as long as the run goes;
    * anneal, only once requested (``with_anneal``), ``A <= s < A + N`` with ``t = s - A``:
      ``exponential``: ``constant * (min / constant) ** (t / N)``; ``linear``: ``constant + (min - constant) * t / N``;
      then ``min_lr`` for good.

    Every value after warmup is clamped to ``>= min_lr`` (gpt-neox #1194's inv-sqrt branch skipped that clamp). All
    boundaries are fields, so ``to_dict`` carries a requested anneal into checkpoints. ``max_steps`` (optional) is the
    run's hard end: an anneal that would end after it is refused.
    """

    max_lr: float
    constant_lr: float
    min_lr: float
    warmup_steps: int
    cooldown_steps: int
    cooldown: str = "cosine"
    timescale: float | None = None
    anneal: str = "exponential"
    anneal_steps: int | None = None
    anneal_start: int | None = None
    max_steps: int | None = None
    type_name: ClassVar[str] = "infinite"

    def __post_init__(self):
        max_lr, const, min_lr = (_rate(n, getattr(self, n)) for n in ("max_lr", "constant_lr", "min_lr"))
        if not min_lr <= const <= max_lr:
            raise ScheduleError(
                f"need min_lr <= constant_lr <= max_lr, got min_lr={min_lr}, constant_lr={const}, max_lr={max_lr}: "
                "the cooldown goes max -> constant and the anneal constant -> min"
            )
        warmup = _steps("warmup_steps", self.warmup_steps)
        cooldown_steps = _steps("cooldown_steps", self.cooldown_steps)
        if cooldown_steps == 0 and const != max_lr:
            raise ScheduleError(
                f"cooldown_steps=0 with constant_lr={const} != max_lr={max_lr} would drop the LR in one step at the "
                "end of warmup; give cooldown_steps > 0, or set constant_lr = max_lr for no cooldown"
            )
        if self.cooldown not in COOLDOWNS:
            raise ScheduleError(f"cooldown={self.cooldown!r} is not one of {COOLDOWNS}")
        timescale = self.timescale
        if self.cooldown == "inv_sqrt":
            if timescale is None:
                raise ScheduleError(
                    "cooldown='inv_sqrt' needs timescale (in steps: the LR falls like max / sqrt(1 + c / timescale)); "
                    "give e.g. timescale=cooldown_steps / 10"
                )
            if isinstance(timescale, bool) or not isinstance(timescale, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(timescale)) or float(timescale) <= 0:
                raise ScheduleError(f"timescale={timescale!r} must be a number of steps > 0")
            timescale = float(timescale)
        elif timescale is not None:
            raise ScheduleError(
                f"timescale={timescale!r} only applies to cooldown='inv_sqrt' (this one is {self.cooldown!r}); "
                "drop it or use cooldown='inv_sqrt'"
            )
        if self.anneal not in ANNEALS:
            raise ScheduleError(f"anneal={self.anneal!r} is not one of {ANNEALS}")
        if self.anneal == "exponential" and min_lr <= 0:
            raise ScheduleError(
                f"an exponential anneal cannot reach min_lr={min_lr} (constant * (min / constant) ** x never gets to "
                "0); set min_lr > 0 or anneal='linear'"
            )
        anneal_steps = None if self.anneal_steps is None else _steps("anneal_steps", self.anneal_steps, minimum=1)
        max_steps = None if self.max_steps is None else _steps("max_steps", self.max_steps, minimum=1)
        start = self.anneal_start
        if start is not None:
            start = _steps("anneal_start", start)
            constant_start = warmup + cooldown_steps
            if start < constant_start:
                raise ScheduleError(
                    f"anneal_start={start} is before the constant phase, which begins at step {constant_start} "
                    f"(warmup {warmup} + cooldown {cooldown_steps} steps); request the anneal at a step >= "
                    f"{constant_start}"
                )
            if anneal_steps is None:
                raise ScheduleError(
                    f"anneal_start={start} needs anneal_steps (how many steps the decay to min_lr takes); "
                    "give anneal_steps, e.g. with_anneal(step, anneal_steps=N)"
                )
            if max_steps is not None and start + anneal_steps > max_steps:
                raise ScheduleError(
                    f"anneal requested past the end: an anneal from step {start} over {anneal_steps} steps ends at "
                    f"step {start + anneal_steps}, after max_steps={max_steps}; start it at step <= "
                    f"{max_steps - anneal_steps} or shorten anneal_steps"
                )
        for name, value in (("max_lr", max_lr), ("constant_lr", const), ("min_lr", min_lr),
                            ("warmup_steps", warmup), ("cooldown_steps", cooldown_steps), ("timescale", timescale),
                            ("anneal_steps", anneal_steps), ("anneal_start", start), ("max_steps", max_steps)):
            _set(self, name, value)

    @property
    def constant_start(self) -> int:
        """The step at which the constant phase begins (an anneal may start here or later)."""
        return self.warmup_steps + self.cooldown_steps

    @property
    def anneal_end(self) -> int | None:
        return None if self.anneal_start is None else self.anneal_start + self.anneal_steps

    def _inv_sqrt_h(self, x: float) -> float:
        return 1.0 / math.sqrt(1.0 + x / self.timescale) - 1.0

    def lr(self, step: int) -> float:
        s = _step_arg(step)
        w, p = self.warmup_steps, self.constant_start
        if s < w:
            return self.max_lr * s / w
        if s < p:
            c = s - w
            if self.cooldown == "cosine":
                lr = self.constant_lr + (self.max_lr - self.constant_lr) * 0.5 * (
                    1.0 + math.cos(math.pi * c / self.cooldown_steps))
            else:
                lr = self.max_lr + (self.constant_lr - self.max_lr) * (
                    self._inv_sqrt_h(c) / self._inv_sqrt_h(self.cooldown_steps))
        elif self.anneal_start is None or s < self.anneal_start:
            lr = self.constant_lr
        else:
            t = s - self.anneal_start
            n = self.anneal_steps
            if t >= n:
                lr = self.min_lr
            elif self.anneal == "exponential":
                lr = self.constant_lr * (self.min_lr / self.constant_lr) ** (t / n)
            else:
                lr = self.constant_lr + (self.min_lr - self.constant_lr) * t / n
        return max(lr, self.min_lr)

    def phase(self, step: int) -> str:
        """``warmup``, ``cooldown``, ``constant``, ``anneal`` or ``annealed`` (at ``min_lr`` for good)."""
        s = _step_arg(step)
        if s < self.warmup_steps:
            return "warmup"
        if s < self.constant_start:
            return "cooldown"
        if self.anneal_start is None or s < self.anneal_start:
            return "constant"
        return "anneal" if s < self.anneal_end else "annealed"

    def with_anneal(self, start_step: int, anneal_steps: int | None = None) -> "Infinite":
        """A copy that anneals from ``start_step`` over ``anneal_steps`` (default: this schedule's ``anneal_steps``)."""
        return replace(self, anneal_start=start_step,
                       anneal_steps=self.anneal_steps if anneal_steps is None else anneal_steps)

    def without_anneal(self) -> "Infinite":
        return replace(self, anneal_start=None, anneal_steps=None)

    def boundaries(self) -> dict[str, int]:
        out = {"cooldown": self.warmup_steps, "constant": self.constant_start}
        if self.anneal_start is not None:
            out["anneal"] = self.anneal_start
            out["min_lr"] = self.anneal_end
        return out


# ---- serialisation ---------------------------------------------------------------------------------------------------


@_register
@dataclass(frozen=True)
class Offset(Schedule):
    """``schedule`` continued from global step ``offset``: how one schedule spans several runs (continual stages,
    each a new trainer counting from 0) without re-warming, e.g. an Infinite schedule across datasets."""

    type_name: ClassVar[str] = "offset"
    schedule: Schedule
    offset: int = 0

    def __post_init__(self):
        _set(self, "schedule", schedule_from_dict(self.schedule))
        _set(self, "offset", _steps("offset", self.offset))

    def lr(self, step: int) -> float:
        return self.schedule.lr(_step_arg(step) + self.offset)

    def to_dict(self) -> dict:
        return {"type": self.type_name, "schedule": self.schedule.to_dict(), "offset": self.offset}

    @property
    def anneal_start(self) -> int | None:
        s = self.schedule.anneal_start
        return None if s is None else s - self.offset

    @property
    def anneal_end(self) -> int | None:
        e = self.schedule.anneal_end
        return None if e is None else e - self.offset

    def with_anneal(self, start_step: int, anneal_steps: int | None = None) -> "Offset":
        return Offset(self.schedule.with_anneal(_step_arg(start_step) + self.offset, anneal_steps), self.offset)

    def without_anneal(self) -> "Offset":
        return Offset(self.schedule.without_anneal(), self.offset)


def schedule_from_dict(d: Mapping | Schedule, defaults: Mapping[str, Any] | None = None) -> Schedule:
    """Rebuild a schedule from ``to_dict()`` output (JSON/YAML). A ``Schedule`` passes through unchanged.

    ``defaults`` fills fields the dict leaves out, for those schedule types that have them, e.g.
    ``{"max_lr": args.learning_rate, "total_steps": num_training_steps}`` lets a recipe say just
    ``{type: warmup_cosine}``. Inside ``stages`` each stage's default ``total_steps`` is its own length.
    """
    if isinstance(d, Schedule):
        return d
    if not isinstance(d, Mapping):
        raise ScheduleError(f"a schedule must be a mapping with a 'type' key (or a Schedule), got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in SCHEDULES:
        raise ScheduleError(f"unknown schedule type {kind!r}; known: {', '.join(sorted(SCHEDULES))}")
    cls = SCHEDULES[kind]
    defaults = dict(defaults or {})
    if cls is Stages:
        unknown = set(d) - {"schedules", "lengths"}
        if unknown or "schedules" not in d or "lengths" not in d:
            raise ScheduleError(
                f"a 'stages' schedule takes exactly 'schedules' and 'lengths'; got keys {sorted(d)}"
            )
        lengths = list(d["lengths"])
        scheds = d["schedules"]
        if not isinstance(scheds, Sequence) or isinstance(scheds, (str, bytes)):
            raise ScheduleError("'schedules' of a 'stages' schedule must be a list of schedules")
        built = [
            schedule_from_dict(s, {**defaults, "total_steps": lengths[i]} if i < len(lengths) else defaults)
            for i, s in enumerate(scheds)
        ]
        return Stages(tuple(built), tuple(lengths))
    if cls is Constant:
        names = {"lr"}
        if "lr" not in d and "lr" in defaults:
            d["lr"] = defaults["lr"]
    else:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for key, value in defaults.items():
            if key in names and key not in d:
                d[key] = value
    unknown = sorted(set(d) - names)
    if unknown:
        raise ScheduleError(f"schedule type {kind!r} has no field(s) {unknown}; its fields are {sorted(names)}")
    if cls is Constant:
        if "lr" not in d:
            raise ScheduleError("schedule type 'constant' needs 'lr'")
        return Constant(d["lr"])
    try:
        return cls(**d)
    except TypeError as e:  # a required field is missing
        raise ScheduleError(f"schedule type {kind!r}: {e}; its fields are {sorted(names)}") from None


# ---- plots -----------------------------------------------------------------------------------------------------------


def example_schedules() -> dict[str, Schedule]:
    """The schedules drawn by ``plot_schedules`` (1,000 steps, peak 3e-4), by short name."""
    peak = 3e-4
    return {
        "WarmupCosine": WarmupCosine(peak, 1000, warmup_steps=50),
        "Stages (re-warm)": Stages.rewarm(peak, [400, 300, 300], warmup_steps=30),
        "Infinite cosine": Infinite(
            peak, 1e-4, 3e-5, warmup_steps=30, cooldown_steps=270, anneal_steps=200).with_anneal(700),
        "Infinite inv-sqrt": Infinite(
            peak, 1e-4, 3e-5, warmup_steps=30, cooldown_steps=270, cooldown="inv_sqrt", timescale=20,
            anneal="linear", anneal_steps=200).with_anneal(700),
        "Constant": Constant(1e-4),
    }


_TITLES = {
    "WarmupCosine": "WarmupCosine: warmup 50 steps, cosine to min = 0.1 x max",
    "Stages (re-warm)": "Stages.rewarm: re-warm + re-decay per stage (400/300/300)",
    "Infinite cosine": "Infinite: cosine cooldown, constant, exponential anneal at 700",
    "Infinite inv-sqrt": "Infinite: inv-sqrt cooldown (timescale 20), linear anneal at 700",
    "Constant": "Constant",
}


def plot_schedules(path: str | Path, log_y: bool = False, steps: int = 1000) -> Path:
    """One PNG with a panel per schedule type (phase starts dotted) and a last panel overlaying them all."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = example_schedules()
    x = np.arange(steps + 1)
    fig = Figure(figsize=(15, 8.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()
    colors = [f"C{i}" for i in range(len(examples))]
    overlay = axes[len(examples)]
    for ax, (name, sched), color in zip(axes, examples.items(), colors):
        y = sched.lrs(x)
        ax.plot(x, y, color=color, lw=2)
        overlay.plot(x, y, color=color, lw=1.5, label=name)
        for label, b in sched.boundaries().items():
            if 0 < b < steps:
                ax.axvline(b, color="0.55", ls=":", lw=1)
                ax.annotate(label, (b, 0.03), xycoords=("data", "axes fraction"), rotation=90, va="bottom",
                            ha="right", fontsize=8, color="0.3")
        ax.set_title(_TITLES.get(name, name), fontsize=10)
    overlay.set_title("all schedules", fontsize=10)
    overlay.legend(fontsize=8, loc="upper right", framealpha=0.95)
    for ax in axes:
        ax.grid(alpha=0.3)
        if log_y:
            ax.set_yscale("log")
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1e}" if v else "0"))
    for ax in axes[3:]:
        ax.set_xlabel("optimizer step")
    for ax in axes[::3]:
        ax.set_ylabel("learning rate")
    fig.suptitle("curricula LR schedules: absolute LR per optimizer step (dotted lines: phase starts)")
    fig.savefig(path)
    return path
