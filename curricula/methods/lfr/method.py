"""LFR (Learn, Focus, Review; Prakriya et al., arXiv 2409.06131) on the seam: a plan of epochs over an index table.

* one curriculum epoch per plan epoch; its steps are the epoch's blocks over the global batch, so a focus epoch is
  shorter and the LR schedule is sized by the plan's real steps;
* ``start_epoch`` asks the policy for the epoch's blocks: **the Focus decision is ``LFRPolicy.eligible_for`` in
  ``curricula/methods/lfr/policy.py``**, made at the first epoch of each focus phase from every block's latest
  perplexity;
* ``end_epoch`` writes every block's loss of the finished epoch into the table (before the next decision reads it).

Padding: an epoch of ``k`` blocks is trained as ``ceil(k / global_batch)`` optimizer steps, so the last step has
``pad = steps * global_batch - k`` free slots, filled with blocks from the start of the order encoded as
``block_id + n_blocks``; the data side trains such a slot with every label ignored (no loss, nothing logged).

Over a weighted mixture (``mixture:`` weights; e.g. what a DoReMi run found): the plan and the Focus decision are
unchanged (global ranking, the same blocks leave), and each epoch's batches are drawn from the domains' remaining
blocks in the mixture's exact per-batch proportions, for the same number of steps. A domain the Focus emptied gets
no more batches; its weight is spread over the others in proportion (and a warning says so).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curricula.errors import ConfigError, CorruptFileError
from curricula.methods.lfr.index_table import IndexTable
from curricula.methods.lfr.order import EpochOrder, EpochStream
from curricula.methods.lfr.plan import PhaseEpoch, Plan
from curricula.methods.lfr.policy import FocusReport, LFRPolicy
from curricula.methods.registry import register
from curricula.methods.seam import (Curriculum, DataInfo, EpochLabel, EpochRecords, MethodConfig, MethodError,
                                    NodeShared, Report, RunInfo)
from curricula.mixing.mixer import DomainMixer
from curricula.mixing.stream import MixerStream
from curricula.mixing.weights import resolve_weights

TABLE_FILE = "table.arrow"


class LFRCurriculum(Curriculum, NodeShared):
    name = "lfr"
    needs = frozenset({"block_records"})
    reports_file = "focus_reports.jsonl"

    def __init__(self, data: DataInfo, run: RunInfo, plan: Plan, mixture: np.ndarray | None = None,
                 table: IndexTable | None = None):
        super().__init__(data, run)
        self.plan = plan
        self.table = table if table is not None else IndexTable.new(data.domain_ids)
        self.policy = LFRPolicy(plan)
        self.mixture = None if mixture is None else np.asarray(mixture, dtype=np.float64)
        self.epochs: list[PhaseEpoch] = plan.epochs()
        self.blocks_per_epoch: list[int] = plan.blocks_per_epoch(self.table.n)
        self.steps_per_epoch: list[int] = [max(1, math.ceil(b / run.global_batch)) for b in self.blocks_per_epoch]
        self._stream: EpochStream | MixerStream | None = None  # the current epoch's
        self._restored: dict | None = None  # a checkpoint's stream position, for the next batches()

    @property
    def n_blocks(self) -> int:
        return self.table.n

    @property
    def current(self) -> PhaseEpoch:
        return self.epochs[self.epoch]

    def epoch_steps(self) -> list[int]:
        return list(self.steps_per_epoch)

    def epoch_label(self, epoch: int) -> EpochLabel:
        e = self.epochs[epoch]
        return EpochLabel(e.index, e.kind, e.phase_index)

    # ---- the epoch's blocks -------------------------------------------------------------------------------------

    def start_epoch(self, epoch: int) -> Report:
        self.epoch = epoch
        kept = self.policy.eligible_for(self.epochs[epoch], self.table)
        report = Report(metrics={"curriculum/next_blocks": int(len(kept))} if epoch > 0 else {})
        nxt = self.epochs[epoch]
        if nxt.kind == "focus" and nxt.starts_phase and self.policy.last_report is not None:
            focus = self.policy.last_report
            report.event = {"epoch": nxt.index, "phase_index": nxt.phase_index, **focus.to_dict()}
            totals = self.data.blocks_per_domain()
            for d, k in focus.kept_per_domain.items():
                name = self.data.domain_names[int(d)] if int(d) < self.data.n_domains else str(d)
                report.metrics[f"curriculum/kept_share/{name}"] = k / max(int(totals[int(d)]), 1)
                if k == 0 and totals[int(d)] > 0:
                    report.warnings.append(
                        f"focus at epoch {nxt.index} drops every block of domain {name!r} (its blocks are all among "
                        f"the {focus.drop_percent:g} % lowest perplexities); it is not trained until the next review")
        return report

    def batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        """The epoch's eligible blocks in a (seed, epoch)-keyed random order (``order.EpochOrder``: evaluated as it
        goes, resumable at any step), then pad slots; over a mixture, exact per-domain counts from the eligible
        blocks. A stream saved by a checkpoint at ``start`` continues from its saved position."""
        if epoch != self.epoch:
            raise MethodError(f"batches of epoch {epoch} requested while the plan is at epoch {self.epoch}; the "
                              "driver and the plan went out of step (please report it)")
        restored, self._restored = self._restored, None
        restored = restored if restored is not None and restored.get("epoch") == epoch else {}
        steps = self.steps_per_epoch[epoch]
        if self.mixture is None:
            self._stream = EpochStream(EpochOrder(self.table.eligible, self.run.seed, epoch), steps,
                                       self.run.global_batch, window=self.run.lookahead)
            yield from self._stream.batches(start, restored.get("cursor") if start else None)
            return
        self._stream = MixerStream(self._epoch_mixer, window=self.run.lookahead)
        self._stream.restore(restored.get("position") or {})
        yield from self._stream.batches(start, steps)

    def stream_state(self, step: int) -> dict:
        epoch, done = self.position(step)
        if self._stream is None or epoch != self.epoch:
            return {}
        if isinstance(self._stream, EpochStream):
            return {"epoch": epoch, "cursor": self._stream.cursor_before(done)}
        return {"epoch": epoch, "position": self._stream.position(done)}

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        self._restored = dict(state) if state else None

    def _epoch_mixer(self) -> DomainMixer:
        eligible = self.table.eligible
        pools = [p[eligible[p]] for p in self.data.pools()]
        w = np.where([p.size > 0 for p in pools], self.mixture, 0.0)
        seed = int(np.random.SeedSequence([self.run.seed, self.epoch]).generate_state(1)[0])
        return DomainMixer(pools, w / w.sum(), self.run.global_batch, seed, names=list(self.data.domain_names))

    # ---- observation --------------------------------------------------------------------------------------------

    def end_epoch(self, records: EpochRecords | None) -> Report:
        assert records is not None
        self.table.update(records.block_id, records.loss, self.epoch)
        finite = np.isfinite(records.loss)
        return Report(metrics={"curriculum/epoch": self.epoch, "curriculum/blocks_trained": len(records),
                               "curriculum/nonfinite_losses": int((~finite).sum())})

    @property
    def last_focus(self) -> FocusReport | None:
        return self.policy.last_report

    # ---- persistence --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "policy": self.policy.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.policy.load_state_dict(state["policy"])

    def describe(self) -> dict:
        d: dict[str, Any] = {"plan": self.plan.to_dict()}
        if self.mixture is not None:
            d["mixture"] = dict(zip(self.data.domain_names, self.mixture.tolist()))
        return d

    def plan_info(self) -> dict:
        """The plan sized in steps (``curriculum/plan.json``)."""
        return {
            "plan": self.plan.to_dict(),
            "seed": self.run.seed,
            "global_batch": self.run.global_batch,
            "n_blocks": self.n_blocks,
            "domain_names": list(self.data.domain_names),
            "epochs": [
                {"index": e.index, "kind": e.kind, "phase_index": e.phase_index, "drop_percent": e.drop_percent,
                 "blocks": b, "steps": s}
                for e, b, s in zip(self.epochs, self.blocks_per_epoch, self.steps_per_epoch)
            ],
            "total_steps": self.total_steps,
            **({"mixture": self.describe()["mixture"]} if self.mixture is not None else {}),
        }

    def save(self, directory: Path, step: int) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.table.save(directory / TABLE_FILE)
        super().save(directory, step)

    def load(self, directory: Path) -> None:
        super().load(directory)
        path = Path(directory) / TABLE_FILE
        try:
            table = IndexTable.load(path)
        except (OSError, ValueError) as err:
            raise CorruptFileError(f"index table {path} cannot be read ({err}); resume from an earlier complete "
                                   "checkpoint") from None
        if table.n != self.data.n_rows:
            raise CorruptFileError(f"index table {path} has {table.n} blocks, the data {self.data.n_rows}")
        self.table = table

    def node_shared(self) -> NodeShared:
        return self

    def save_shared(self, path: Path) -> None:
        """What the node's other processes need to follow the decision: the eligible set, bit-packed (N/8 bytes;
        the losses stay with the deciding process, which alone ranks them)."""
        from curricula.run_layout import write_bytes

        write_bytes(path, np.packbits(self.table.eligible).tobytes())

    def adopt_shared(self, path: Path, epoch: int) -> None:
        """Take the decision the node's deciding process wrote for ``epoch``: the eligible set it chose from the same
        gathered losses. This process then holds the eligible column only (its loss columns are never built)."""
        packed = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
        self.table.set_eligible(np.unpackbits(packed, count=self.table.n).astype(bool))
        self.epoch = epoch
        e = self.epochs[epoch]
        if e.kind == "focus":
            self.policy.decided_phase = e.phase_index

    def write_boundary_logs(self, log_dir: Path) -> list[Path]:
        """At every boundary: the table with every block's latest statistics."""
        return [self.table.save(Path(log_dir) / TABLE_FILE)]


@register("lfr")
@dataclass
class LFRConfig(MethodConfig):
    """``method: lfr``: a plan (``phases``, ``params``, ``name``), optionally over a weighted mixture (``mixture``).
    Keyword parameters (``curriculum_params``) are the plan's parameters, e.g. ``reps``."""

    phases: list = field(default_factory=list)
    name: str = "plan"
    params: dict = field(default_factory=dict)
    mixture: Any = None  # domain weights (as for method: mixture); None: every epoch's blocks in a shuffled order
    plan: Plan | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.plan is None:
            self.plan = Plan.from_dict({"name": self.name, "params": self.params, "phases": self.phases})
        elif not isinstance(self.plan, Plan):
            raise ConfigError(f"plan must be a curricula Plan, got {type(self.plan).__name__}")

    @classmethod
    def from_plan(cls, plan: Plan, mixture: Any = None) -> "LFRConfig":
        return cls(name=plan.name, params=dict(plan.params), phases=[p.to_dict() for p in plan.phases],
                   mixture=mixture, plan=plan)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **params: Any) -> "LFRConfig":
        data = {k: v for k, v in dict(data or {}).items() if k != "method"}
        mixture = data.pop("mixture", None)
        return cls.from_plan(Plan.from_dict(data, **params), mixture=mixture)

    @property
    def sets_steps(self) -> bool:
        return True

    def with_domain_weights(self, weights: Any) -> "LFRConfig":
        if self.mixture is not None:
            raise ConfigError(f"the LFR recipe already runs over the mixture {self.mixture!r}; --domain_weights "
                              f"{weights!r} would replace it: give the weights in one place")
        return LFRConfig.from_plan(self.plan, mixture=weights)

    def to_dict(self) -> dict:
        d = {"method": self.method, **self.plan.to_dict()}
        if self.mixture is not None:
            d["mixture"] = self.mixture.tolist() if isinstance(self.mixture, np.ndarray) else self.mixture
        return d

    def build(self, data: DataInfo, run: RunInfo) -> LFRCurriculum:
        mixture = None
        if self.mixture is not None:
            mixture = resolve_weights(self.mixture, data.domain_names, data.blocks_per_domain(), what="mixture")
        return LFRCurriculum(data, run, self.plan, mixture=mixture)
