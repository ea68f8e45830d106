"""Online mixtures: methods that learn domain weights from every optimizer step and draw the next batches from them.

``OnlineMixture`` is the base of one-run DoReMi, ODM, ADO and Aioli; a method implements ``update`` (its rule: the
sampling weights after one step's per-domain statistics) and, for its own state, ``rule_state``/``load_rule_state``.
The base class does the rest, identically for every method:

* batch ``t`` is drawn from the weights after step ``t - delay`` (``delay`` >= the data loader's lookahead), so the
  stream is a function of the observed statistics only: identical on every process and after a resume;
* the state stays flat however long the run: the last ``delay + 1`` weight vectors (what the next batches are drawn
  from) and the mixer's position at the checkpoint's step, never the history; a resume continues the stream at its
  step instead of replaying it from batch 0;
* the per-step history (weights and whatever ``log_row`` adds) goes to a ``StepLog`` under the run folder, written
  in chunks at checkpoints; at the end ``OUT/<out_folder>/`` gets ``domain_weights.json`` (reusable by another run),
  ``weights_history.parquet`` and ``domain_weights.png``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from curricula.errors import ConfigError
from curricula.logs import StepLog
from curricula.methods.seam import Curriculum, DataInfo, MethodError, RunInfo, StepStats
from curricula.mixing.mixer import DomainMixer
from curricula.mixing.stream import MixerStream

HISTORY_DIR = "history"
PLOT_POINTS = 2000  # the weights plot shows at most this many steps (evenly spaced) of a long run


class WeightsLog:
    """Per-step rows of named groups of per-domain values (``weights``, ``average``, ...) in a ``StepLog``; columns
    ``<group>/<domain>``."""

    def __init__(self, groups: tuple[str, ...], names: list[str]):
        self.groups, self.names = tuple(groups), list(names)
        self.log = StepLog([f"{g}/{n}" for g in self.groups for n in self.names])

    def open(self, directory: Path | None, start_step: int) -> None:
        self.log.open(directory, start_step)

    def append(self, step: int, **values: np.ndarray) -> None:
        if self.log.directory is not None:
            self.log.append(step, np.concatenate([np.asarray(values[g], dtype=np.float64) for g in self.groups]))

    def flush(self) -> None:
        self.log.flush()

    def group(self, table, name: str) -> np.ndarray:
        return np.stack([np.asarray(table.column(f"{name}/{n}")) for n in self.names], axis=1)


def write_weights_outputs(out_dir: Path, final: np.ndarray, log: WeightsLog, names: list[str],
                          tokenizer: dict | None, extra: dict, title: str = "domain weights per step") -> list[Path]:
    """``domain_weights.json`` (``final``, stamped with the tokenizer), ``weights_history.parquet`` (the step log in
    one table) and ``domain_weights.png``."""
    from curricula.mixing.weights import weights_json
    from curricula.report.training_plots import plot_weights
    from curricula.run_layout import write_json, write_parquet

    out = Path(out_dir)
    written = [write_json(out / "domain_weights.json", weights_json(final, names, tokenizer, extra))]
    log.flush()
    table = log.log.read()
    if table is not None and table.num_rows:
        written.append(write_parquet(out / "weights_history.parquet", table))
        pick = np.unique(np.linspace(0, table.num_rows - 1, min(PLOT_POINTS, table.num_rows)).astype(np.int64))
        steps = np.asarray(table.column("step"))[pick]
        average = log.group(table, "average")[pick] if "average" in log.groups else None
        written.append(plot_weights(steps, log.group(table, "weights")[pick], names, out / "domain_weights.png",
                                    average=average, title=title))
    return written


class OnlineMixture(Curriculum):
    """One epoch of ``max_steps`` batches drawn with exact per-domain counts from weights learned online."""

    needs: ClassVar[frozenset[str]] = frozenset({"step_stats"})
    out_folder: ClassVar[str] = "mixer"  # OUT/<out_folder>/: the history and the weights files
    log_groups: ClassVar[tuple[str, ...]] = ("weights",)  # the step log's per-domain columns (see ``log_row``)
    plot_title: ClassVar[str] = "sampling weights per step"

    def __init__(self, data: DataInfo, run: RunInfo, initial: np.ndarray, delay: int | None = None):
        super().__init__(data, run)
        if run.max_steps is None or run.max_steps <= 0:
            raise ConfigError(f"{self.name} trains for max_steps optimizer steps: set max_steps")
        self.initial = np.asarray(initial, dtype=np.float64)
        self.delay = max(1, int(delay if delay is not None else run.lookahead))
        self.steps_observed = 0
        self._recent: dict[int, np.ndarray] = {0: self.initial}  # sampling weights after j observed steps
        self.stream = MixerStream(self._mixer, window=run.lookahead + self.delay, weights_for=self.sampling_weights)
        self.history = WeightsLog(self.log_groups, list(data.domain_names))

    # ---- the method's rule --------------------------------------------------------------------------------------

    @abstractmethod
    def update(self, stats: StepStats) -> np.ndarray:
        """The sampling weights after this step (a probability vector, one entry per domain)."""

    def output_weights(self) -> np.ndarray:
        """The weights the run hands on (``domain_weights.json``, ``result()``); default: the current ones."""
        return self._recent[self.steps_observed]

    def log_row(self) -> dict[str, np.ndarray]:
        """This step's per-domain values for the step log, one per ``log_groups`` entry."""
        return {"weights": self._recent[self.steps_observed]}

    def rule_state(self) -> dict[str, Any]:
        """The rule's own state (JSON values and numpy arrays) for an exact resume."""
        return {}

    def load_rule_state(self, state: Mapping[str, Any]) -> None:
        pass

    def output_extra(self) -> dict:
        """What the weights file records about how the weights were found."""
        return {}

    # ---- the stream ---------------------------------------------------------------------------------------------

    def _mixer(self) -> DomainMixer:
        return DomainMixer(self.data.pools(), self.initial, self.run.global_batch, self.run.seed,
                           names=list(self.data.domain_names))

    def epoch_steps(self) -> list[int]:
        return [int(self.run.max_steps)]

    def sampling_weights(self, batch: int) -> np.ndarray:
        """The weights batch ``batch`` (0-based) is drawn from: those after ``batch - delay`` observed steps."""
        j = max(0, batch - self.delay)
        if j > self.steps_observed:
            raise MethodError(
                f"batch {batch} is drawn from the weights after step {j}, but only {self.steps_observed} steps have "
                f"been observed: the data loader reads further ahead than delay={self.delay}; raise delay in the "
                "recipe (or lower dataloader_num_workers / dataloader_prefetch_factor)")
        return self._recent[j]

    def batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        return self.stream.batches(start, int(self.run.max_steps))

    def observe_step(self, stats: StepStats) -> None:
        if stats.step != self.steps_observed + 1:
            raise MethodError(f"step {stats.step} observed after {self.steps_observed} steps; steps must be observed "
                              "once each, in order")
        weights = np.asarray(self.update(stats), dtype=np.float64)
        self.steps_observed = stats.step
        self._recent[stats.step] = weights
        self._recent.pop(stats.step - self.delay - 1, None)  # no batch still to be drawn needs it
        self.history.append(stats.step, **self.log_row())

    def step_metrics(self) -> dict[str, float]:
        return {f"domain_weight/{n}": float(w) for n, w in zip(self.data.domain_names, self._recent[self.steps_observed])}

    # ---- persistence --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        steps = sorted(self._recent)
        return {"epoch": self.epoch, "steps_observed": self.steps_observed,
                "recent_steps": np.asarray(steps, dtype=np.int64),
                "recent_weights": np.stack([self._recent[j] for j in steps]), **self.rule_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.steps_observed = int(state["steps_observed"])
        steps, rows = np.asarray(state["recent_steps"]), np.asarray(state["recent_weights"], dtype=np.float64)
        self._recent = {int(j): rows[i] for i, j in enumerate(steps)}
        if self.steps_observed not in self._recent:
            raise MethodError(f"the saved state of {self.name} lacks the weights after step {self.steps_observed}; "
                              "resume from a checkpoint written by this version of curricula")
        self.load_rule_state(state)

    def stream_state(self, step: int) -> dict:
        return {"position": self.stream.position(step)}

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        self.stream.restore(state.get("position") or {})

    # ---- logs and outputs ---------------------------------------------------------------------------------------

    def open_logs(self, log_dir: Path | None, step: int) -> None:
        self.history.open(Path(log_dir) / self.out_folder / HISTORY_DIR if log_dir is not None else None, step)

    def flush_logs(self) -> None:
        self.history.flush()

    def result(self) -> dict:
        return {"weights": self.output_weights().tolist()}

    def write_outputs(self, out_dir: Path, **context) -> list[Path]:
        extra = {"method": self.name, "steps": self.steps_observed, "initial_weights": self.initial.tolist(),
                 "final_weights": self._recent[self.steps_observed].tolist(), "delay": self.delay,
                 **self.output_extra(), **{k: v for k, v in context.items() if isinstance(v, (str, int, float))}}
        return write_weights_outputs(Path(out_dir) / self.out_folder, self.output_weights(), self.history,
                                     list(self.data.domain_names), self.data.tokenizer, extra, title=self.plot_title)


def read_weights_history(path: Path) -> dict[str, np.ndarray]:
    """A ``weights_history.parquet`` as arrays: ``step`` [n] and one [n, domains] array per group (``weights``,
    ``average``, ...), domains in file order (``names``)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out: dict = {"step": np.asarray(table.column("step"))}
    groups: dict[str, list[str]] = {}
    for name in table.column_names[1:]:
        group, _, domain = name.partition("/")
        groups.setdefault(group, []).append(domain)
    for group, domains in groups.items():
        out[group] = np.stack([np.asarray(table.column(f"{group}/{d}")) for d in domains], axis=1)
    out["names"] = groups[next(iter(groups))] if groups else []
    return out


# ---- config checks shared by the online mixers' configs (odm, ado, aioli) ------------------------------------------


def is_number(x) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def check_delay(method: str, delay) -> None:
    if delay is not None and (not is_int(delay) or delay < 1):
        raise ConfigError(f"{method}: delay={delay!r} must be a positive integer number of steps (batch t is drawn "
                          "from the weights after step t - delay), or null for the data loader's lookahead")


def require_domains(method: str, data: DataInfo) -> None:
    if data.n_domains < 2:
        raise ConfigError(f"{method} mixes domains: the data has {data.n_domains}; give it at least two domains")
