"""The seam every method plugs into: a ``Curriculum`` decides which blocks the trainer sees, observes what it learned,
and may weight its loss. Pure numpy; nothing here knows about ``transformers`` or torch.

How a driver runs a curriculum (``hf_trainer_ext.CurriculumTrainer`` is the one driver; ``benchmarks/bench_horizon.py``
drives the same hooks without a model). Every hook has a safe default except ``epoch_steps`` and ``batches``:

==========================  =====================================================================  ===================
hook                        when the driver calls it                                               default
==========================  =====================================================================  ===================
``epoch_steps()``           once, to size the run (the LR schedule ends where the run ends)         (required)
``start_epoch(e)``          before epoch ``e``'s first batch: decide its data (LFR's Focus)         nothing
``batches(e, start)``       the data loader reads epoch ``e``'s global batches from its step         (required)
                            ``start`` (0, or the resumed step: never replayed from 0)
``observe_step(stats)``     after every optimizer step, with the global batch's per-domain sums     nothing
                            (``needs = {"step_stats"}``)
``loss_weights()``          after ``observe_step``: per-domain weights of the next step's loss       None (unweighted)
``wants_eval(step)`` /      after ``observe_step``: whether to measure per-domain validation loss   False
``observe_eval(...)``       now; if so, the measurement (``needs = {"eval_stats"}``; Aioli)
``end_epoch(records)``      at the epoch's end, with every block's loss of the epoch                 nothing
                            (``needs = {"block_records"}``; else None)
``step_metrics()``          at logging steps: values for ``Trainer.log``                             {}
``epoch_label(e)``          names epoch ``e`` in the curriculum log (``phase`` is a free label)      ``train``
``plan_info()``             once, written to ``curriculum/plan.json`` (the run sized in steps)       None (no file)
``open_logs(dir, step)``    once per ``train()``: where the method appends its own logs, and the     nothing
                            step the run starts at (anything logged after it is a crashed timeline)
``write_boundary_logs(d)``  after each boundary, in the background (LFR: the index table)            nothing
``state_dict()`` /          at every checkpoint / on resume: everything needed to continue           the epoch
``load_state_dict()``       bit-identically (JSON values and numpy arrays, never pickle)
``stream_state(step)`` /    the data stream's position at a checkpoint's step, so a resumed          {} (a stream that
``load_stream_state()``     ``batches`` continues there instead of replaying                         needs none)
``write_outputs(dir)``      at the end of training: weights files, plots                              nothing
``result()``                what a pipeline reads from a finished run (e.g. DoReMi's weights)        {}
``node_shared()``           with several processes per node: a large state shared through one        None
                            memory-mapped file (capability ``NodeShared``; the LFR index table)
==========================  =====================================================================  ===================

Every process computes the identical stream from the curriculum's seed and state; accelerate hands each process its
share. A row id ``>= n_rows`` is a padding slot (trained with no loss). Statistics given to ``observe_step`` and
``end_epoch`` are over all processes, so every process holds the same state without communicating.

A new method is a ``MethodConfig`` (what a recipe says, validated in ``__post_init__``) whose ``build`` returns the
``Curriculum``, registered by name with ``@register("name")`` (``curricula.methods.registry``), or named by a recipe
as ``method: package.module:ConfigClass``, or registered by an installed package through the entry-point group
``curricula.methods``.
"""
from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from curricula.errors import ConfigError, CurriculaError

STATE_FILE = "state.json"


class MethodError(CurriculaError):
    """A method's configuration or state that cannot be used; the message names the fix."""


# ---- what a curriculum is told ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataInfo:
    """The training rows a curriculum orders: row ``i`` is block ``i`` (dense block ids), in domain ``domain_ids[i]``."""

    domain_ids: np.ndarray
    domain_names: tuple[str, ...]
    block_size: int | None = None
    tokenizer: dict | None = None  # the packed data's tokenizer identity (stamped on weights files)

    def __post_init__(self):
        d = np.asarray(self.domain_ids)
        if d.ndim != 1 or (d.size and d.dtype.kind not in "iu"):
            raise MethodError(f"domain_ids must be a 1-D integer array (one per block), got {d.dtype} {d.shape}")
        object.__setattr__(self, "domain_ids", d)
        object.__setattr__(self, "domain_names", tuple(str(n) for n in self.domain_names))
        if d.size and int(d.max()) >= len(self.domain_names):
            raise MethodError(
                f"the data has domain id {int(d.max())} but only {len(self.domain_names)} domain names "
                f"{list(self.domain_names)}; pass one name per domain id (domain_names=)"
            )

    @property
    def n_rows(self) -> int:
        return int(self.domain_ids.size)

    @property
    def n_domains(self) -> int:
        return len(self.domain_names)

    def blocks_per_domain(self) -> np.ndarray:
        return np.bincount(self.domain_ids, minlength=self.n_domains).astype(np.int64)

    def pools(self) -> list[np.ndarray]:
        """Each domain's row ids, ascending."""
        order = np.argsort(self.domain_ids, kind="stable")
        cuts = np.searchsorted(self.domain_ids[order], np.arange(1, self.n_domains))
        return [p.astype(np.int64) for p in np.split(order, cuts)]


@dataclass(frozen=True)
class RunInfo:
    """The run's sizes: blocks per optimizer step over all processes, the step budget (None: the method's own), seed."""

    global_batch: int
    max_steps: int | None
    seed: int
    lookahead: int = 2  # global batches the data loader may request before the previous step has been observed

    def __post_init__(self):
        if self.global_batch < 1:
            raise MethodError(f"global_batch={self.global_batch} must be >= 1")


@dataclass
class StepStats:
    """One optimizer step over the global batch, per domain: tokens counted in the loss, their summed loss, and
    (with a reference) their summed clipped excess loss max(l - l_ref, 0)."""

    step: int  # the optimizer step just finished, 1-based (Trainer's global_step)
    tokens: np.ndarray
    loss_sum: np.ndarray
    excess_sum: np.ndarray | None = None


@dataclass
class EvalStats:
    """Per-domain validation loss after an optimizer step (all processes): tokens counted and their summed loss."""

    step: int
    tokens: np.ndarray
    loss_sum: np.ndarray

    @property
    def loss(self) -> np.ndarray:
        """Mean token loss per domain (NaN for a domain without held-out blocks)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.tokens > 0, self.loss_sum / np.maximum(self.tokens, 1), np.nan)


@dataclass
class EpochRecords:
    """Every block trained in an epoch (all processes): its mean token loss and the 1-based step it was trained in."""

    block_id: np.ndarray
    domain_id: np.ndarray
    step: np.ndarray
    loss: np.ndarray

    def __len__(self) -> int:
        return int(self.block_id.size)


@dataclass
class Report:
    """What a curriculum did: ``metrics`` go to ``Trainer.log`` (every ``report_to``), ``event`` (if any) is appended
    to the run's ``curriculum/reports.jsonl`` and ``warnings`` are logged as warnings."""

    metrics: dict[str, float] = field(default_factory=dict)
    event: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: "Report | None") -> "Report":
        if other is not None:
            self.metrics.update(other.metrics)
            self.warnings += other.warnings
            if other.event is not None:
                self.event = {**(self.event or {}), **other.event}
        return self


@dataclass(frozen=True)
class EpochLabel:
    """How the curriculum log names an epoch: its index, a free ``phase`` label (LFR: learn / focus / review; a
    method without phases: ``train``) and the phase's index in the run."""

    index: int
    phase: str = "train"
    phase_index: int = 0


class NodeShared(ABC):
    """Optional capability (``Curriculum.node_shared``): a large per-block state that the processes of a node share
    through one memory-mapped file instead of each holding a copy. At a boundary one process per node decides the
    next epoch and ``save_shared``s; every process of the node then ``adopt_shared``s the file."""

    @abstractmethod
    def save_shared(self, path: Path) -> None: ...

    @abstractmethod
    def adopt_shared(self, path: Path, epoch: int) -> None:
        """Take the state another process wrote for ``epoch`` (it is the one this process would have computed)."""


# ---- the protocol -------------------------------------------------------------------------------------------------


class Curriculum(ABC):
    """Decides the trainer's data (the module docstring's table says when each hook is called)."""

    name: ClassVar[str] = "curriculum"
    #: what the driver must provide: "block_records" (end_epoch gets every block's loss), "step_stats"
    #: (observe_step after each optimizer step), "reference" (reference losses for the excess loss), "eval_stats"
    #: (per-domain validation losses at the steps the method asks for: wants_eval / observe_eval)
    needs: ClassVar[frozenset[str]] = frozenset()
    #: the file in the run's curriculum log that lists the method's decisions (``Report.event``), one per line
    reports_file: ClassVar[str] = "reports.jsonl"

    def __init__(self, data: DataInfo, run: RunInfo):
        self.data, self.run = data, run
        self.epoch = 0

    # ---- sizes --------------------------------------------------------------------------------------------------

    @abstractmethod
    def epoch_steps(self) -> list[int]:
        """Optimizer steps of every epoch (fixed for the run: the LR schedule is sized from their sum)."""

    @property
    def total_steps(self) -> int:
        return int(sum(self.epoch_steps()))

    def boundaries(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.epoch_steps())]).astype(np.int64)

    def position(self, global_step: int) -> tuple[int, int]:
        """(epoch, optimizer steps already done in it) after ``global_step`` steps."""
        b = self.boundaries()
        if not 0 <= global_step <= int(b[-1]):
            raise MethodError(f"step {global_step} is outside the curriculum's {int(b[-1])} steps")
        e = min(int(np.searchsorted(b, global_step, side="right") - 1), len(b) - 2)
        return e, int(global_step - b[e])

    def epoch_ends_at(self, global_step: int) -> bool:
        return global_step == int(self.boundaries()[self.epoch + 1])

    def epoch_label(self, epoch: int) -> EpochLabel:
        return EpochLabel(epoch)

    # ---- data ---------------------------------------------------------------------------------------------------

    def start_epoch(self, epoch: int) -> Report | None:
        """Decide ``epoch``'s data and make it current."""
        self.epoch = epoch
        return None

    @abstractmethod
    def batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        """The global batches of ``epoch`` ([global_batch] row ids each) from its step ``start``: after a resume at
        that step, exactly the batches the uninterrupted run trained next (see ``stream_state``)."""

    def stream_state(self, step: int) -> dict[str, Any]:
        """The data stream's state at global step ``step`` (saved in the checkpoint taken there), for a stream that
        cannot start at a step from ``state_dict`` alone (e.g. a mixer's carried residuals). Called right after
        step ``step`` was observed; the data loader may have read a few batches further."""
        return {}

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``stream_state``: the next ``batches(epoch, start)`` continues from it."""

    # ---- observation --------------------------------------------------------------------------------------------

    def observe_step(self, stats: StepStats) -> Report | None:
        return None

    def end_epoch(self, records: EpochRecords | None) -> Report | None:
        """The epoch's boundary: every loss of the epoch is known; ``start_epoch`` of the next one follows."""
        return None

    def loss_weights(self) -> np.ndarray | None:
        """Per-domain weights of each token's loss in the next step (None: unweighted)."""
        return None

    def wants_eval(self, step: int) -> bool:
        """After step ``step`` (observed): measure every domain's validation loss now? (``needs = {"eval_stats"}``)"""
        return False

    def observe_eval(self, stats: EvalStats) -> Report | None:
        """Every domain's mean token loss on the held-out mixing set, measured after step ``stats.step`` with the
        model as it is then (no dropout, no gradient), summed over all processes."""
        return None

    def step_metrics(self) -> dict[str, float]:
        """Values to log at logging steps (e.g. the current domain weights)."""
        return {}

    # ---- what it writes and says --------------------------------------------------------------------------------

    def describe(self) -> dict:
        """The method's configuration, for run.json and the model card."""
        return {}

    def plan_info(self) -> dict | None:
        """The run sized in steps (``curriculum/plan.json``, read by the model card and the analysis); None: none."""
        return None

    def open_logs(self, log_dir: Path | None, step: int) -> None:
        """Where the method appends its own logs while training (None on processes that do not write), and the
        global step this ``train()`` starts at: anything logged after it belongs to a crashed timeline."""

    def flush_logs(self) -> None:
        """At every checkpoint: what ``open_logs``' files hold must cover every observed step."""

    def write_boundary_logs(self, log_dir: Path) -> list[Path]:
        """After each epoch boundary, in a background thread that is joined before the next boundary, checkpoint
        or the end (nothing the thread reads changes meanwhile)."""
        return []

    def write_outputs(self, out_dir: Path, **context) -> list[Path]:
        """Method artifacts at the end of training (weights files, plots); returns the paths written."""
        return []

    def result(self) -> dict[str, Any]:
        """What a pipeline reads from a finished run (DoReMi: ``{"weights": [...]}``), JSON values only."""
        return {}

    def node_shared(self) -> NodeShared | None:
        """The capability of sharing a large state between the processes of a node (see ``NodeShared``)."""
        return None

    # ---- persistence --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])

    def fingerprint(self) -> dict:
        """What must match for a checkpoint to resume this run (method, sizes, seed, config)."""
        return {"method": self.name, "rows": self.data.n_rows, "global_batch": self.run.global_batch,
                "seed": self.run.seed, "config": self.describe()}

    def save(self, directory: Path, step: int) -> None:
        """The state at global step ``step`` as ``state.json`` plus one ``.npy`` per numpy array (exact, no
        pickle)."""
        from curricula.run_layout import write_bytes, write_json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc, arrays = _split_arrays(self.state_dict())
        for key, arr in arrays.items():
            import io

            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            write_bytes(directory / f"{key}.npy", buf.getvalue())
        write_json(directory / STATE_FILE, {"fingerprint": self.fingerprint(), "state": doc, "step": int(step),
                                            "stream": self.stream_state(step), "arrays": sorted(arrays)},
                   sort_keys=True)

    def load(self, directory: Path) -> None:
        from curricula.errors import CheckpointError
        from curricula.run_layout import read_json

        directory = Path(directory)
        saved = read_json(directory / STATE_FILE, "curriculum state")
        mine = json.loads(json.dumps(self.fingerprint()))
        if saved.get("fingerprint") != mine:
            raise CheckpointError(
                f"{directory} was saved by another curriculum: {_fingerprint_diff(saved.get('fingerprint'), mine)}; "
                "resume with the same method, configuration, data, seed and blocks per step "
                "(per-device batch x processes x gradient accumulation)"
            )
        state = dict(saved["state"])
        for key in saved.get("arrays", []):
            path = directory / f"{key}.npy"
            try:
                state[key] = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                from curricula.errors import CorruptFileError

                raise CorruptFileError(f"curriculum state {path} cannot be read ({err}); resume from an earlier "
                                       "complete checkpoint") from None
        self.load_state_dict(state)
        self.load_stream_state(saved.get("stream") or {})


def _split_arrays(state: dict) -> tuple[dict, dict[str, np.ndarray]]:
    doc, arrays = {}, {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            arrays[k] = v
        else:
            doc[k] = v
    return doc, arrays


def _fingerprint_diff(saved: Any, mine: dict) -> str:
    if not isinstance(saved, dict):
        return "it has no fingerprint"
    keys = [k for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)]
    return "; ".join(f"{k}: saved {saved.get(k)!r}, this run {mine.get(k)!r}" for k in keys) or "unknown difference"


# ---- what a recipe says ---------------------------------------------------------------------------------------------


@dataclass
class MethodConfig:
    """What a recipe says about a method; ``build`` makes the runtime ``Curriculum``. Subclasses are dataclasses whose
    fields are the recipe's keys (checked in ``__post_init__``)."""

    method: ClassVar[str] = ""

    @abstractmethod
    def build(self, data: DataInfo, run: RunInfo) -> Curriculum: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **params: Any) -> "MethodConfig":
        """From a recipe's mapping (``method:`` removed); ``params`` override keys."""
        data = {k: v for k, v in dict(data or {}).items() if k != "method"}
        data.update({k: v for k, v in params.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.method} recipe: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return {"method": self.method, **json.loads(json.dumps(dataclasses.asdict(self), default=_jsonable))}

    def with_domain_weights(self, weights: Any) -> "MethodConfig":
        """This config with ``--domain_weights`` applied; methods that have no use for weights refuse them."""
        raise ConfigError(f"--domain_weights has no meaning for method {self.method!r}; drop it (or use a method "
                          "that takes weights: mixture, lfr, group_dro, doremi_online, odm, ado, aioli)")

    @property
    def sets_steps(self) -> bool:
        """Whether the method fixes the run's length itself (an LFR plan) instead of taking ``max_steps``."""
        return False


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if dataclasses.is_dataclass(x):
        return dataclasses.asdict(x)
    return str(x)
