"""A stall watchdog for multi-process runs: a rank that makes no progress for ``stall_timeout`` seconds ends itself
with exit code 75, naming the rank(s) it waits for and the run's last complete checkpoint, instead of blocking in a
collective until gloo's (or NCCL's) timeout.

Why it is needed (docs/fault_tolerance.md): a rank that is stopped (SIGSTOP, frozen, swapped out, its host paused)
keeps its sockets open, so its peers' collectives never fail; only the process group's timeout ends them, and gloo's
message names an address, not a rank. (That timeout was torch's 30 min with ``--use_cpu`` whatever ``--ddp_timeout``
said: ``arguments.apply_ddp_timeout`` fixes that.) A killed rank is no problem: its sockets close, and its peers'
collectives fail at once.

* **Heartbeat.** Each rank runs one daemon thread. Every ``beat_s`` it writes a small record (a sequence number, its
  step, phase, idle time and budget, pid, host) under ``watchdog/<run>/<restart>/<generation>/<rank>`` in the job's
  rendezvous store, through a connection of its own (a clone of the default store, with a short timeout, so it never
  queues behind the training thread's store calls). A stopped process cannot advance its sequence number; that tells
  it apart from a slow one. Records are compared by sequence number, never by clock.
* **Progress.** The training loop marks progress (``WatchdogCallback``: every step, accumulation micro-step,
  evaluation batch, log and save); nothing is wrapped around single collectives (DDP's gradient all-reduce runs in C++
  autograd hooks, out of Python's reach), so any stall stops the same clock: a collective, a store wait, a data loader.
* **Phases.** ``phase(name, budget_s)`` marks progress on entry and exit and gives work that legitimately runs longer
  than the bound without a step its own budget: the first step, checkpoint saves, evaluations, epoch ends (each
  ``ddp_timeout``: past it gloo ends any wait anyway).
* **Decision** (``decide``). Once a rank has gone ``bound_s - window_s`` without progress it reads every record, and
  again each beat; with two reads ``window_s`` apart: a peer whose sequence number did not move is *stopped*: end now,
  whatever this rank's own phase. Otherwise, while this rank or a live peer is within its budget (rank 0 still writing
  a checkpoint the others wait for): wait. Otherwise end: with a peer that never started or has left training, the
  rank(s) named as gone; with every rank alive, "alive but stuck" (a deadlock, or a rank hung in its own code),
  naming the ranks furthest behind.
* **The end.** The message (names, steps, the last complete checkpoint, how to resume) goes to stderr, then every
  thread's Python stack, then the report to ``OUTPUT_DIR/watchdog/rank<r>.json``; the process ends with
  ``os._exit(75)`` (``EX_TEMPFAIL``: resume from the last complete checkpoint).

**Bound.** B = ``bound_s``, b = ``beat_s``, w = ``window_s``: a live rank whose peer stops at T exits by
T + d + B + 2b (d: the work it still had to do without the peer, at most a step). The launcher (torchrun, accelerate
launch) ends the job 30 s later (its SIGTERM grace for the stopped rank). Add s = ``store_timeout_s`` when the store
itself does not answer, and w when no rank stopped but a peer's last record still had budget left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure; resume from the last complete checkpoint
OFF = "off"  # the phase of a rank whose watchdog has stopped (training ended): never "stopped"
STORE_TIMEOUT_S = 5.0  # the longest wait for one heartbeat store operation
MIN_BOUND_S = 5.0  # beats at least every second, compared at least 3 s apart: the bound must exceed that
_generation = 0  # watchdogs started in this process: every rank starts the same ones in the same order


def beat_for(bound_s: float) -> float:
    return max(1.0, min(10.0, bound_s / 15))


def stall_bound(args) -> float:
    """The watchdog's bound for these arguments: ``stall_timeout`` (0: off), by default min(600, ddp_timeout / 2)
    (off when that is under 5 s: ddp_timeout alone then ends a stall as quickly)."""
    value = getattr(args, "stall_timeout", None)
    if value is None:
        value = min(600.0, args.ddp_timeout / 2)
        return value if value >= MIN_BOUND_S else 0.0
    return float(value)


def decide(rank: int, world_size: int, before: dict[int, dict], after: dict[int, dict], idle_s: float,
           budget_s: float) -> tuple[str, list[int]]:
    """What a rank without progress for ``idle_s`` (>= the bound) does, from every rank's heartbeat records read twice,
    a window apart: ('stopped', ranks whose sequence number did not move), ('wait', live peers still within their
    budget, or [] when this rank is within its own), ('gone', peers that never started or have left training), or
    ('stuck', the live ranks furthest behind; [] when all are at one step)."""
    peers = [r for r in range(world_size) if r != rank]
    running = {r: rec for r, rec in after.items() if rec.get("phase") != OFF}
    stopped = [r for r in peers if r in running and r in before and before[r]["seq"] == running[r]["seq"]]
    if stopped:
        return "stopped", stopped
    if idle_s < budget_s:
        return "wait", []
    gone = [r for r in peers if r not in running]
    if gone:
        return "gone", gone
    busy = [r for r in peers if running[r]["idle_s"] < running[r]["budget_s"]]
    if busy:
        return "wait", busy
    steps = {r: rec.get("step") or 0 for r, rec in running.items()}
    low = min(steps.values())
    return "stuck", sorted(r for r, s in steps.items() if s == low) if len(set(steps.values())) > 1 else []


def describe(r: int, rec: dict | None) -> str:
    if rec is None:
        return f"rank {r}: no heartbeat ever"
    return (f"rank {r} (pid {rec.get('pid')} on {rec.get('host')}), at its last heartbeat: step {rec.get('step')}, "
            f"phase '{rec.get('phase')}', {rec.get('idle_s')} s without progress")


class Watchdog:
    """Ends this process (``exit_fn(75)``) after ``bound_s`` without ``progress()`` (see the module docstring).

    ``store``: a c10d Store only this watchdog uses (``clone()`` of the default store); ``on_stuck(report)`` returns
    text for the message (it runs on the watchdog thread while training is blocked: no collectives);
    ``still_watching()``: false once training has ended without ``stop()`` (the watchdog then stops quietly);
    ``report_dir``: where ``rank<r>.json`` goes."""

    def __init__(self, bound_s: float, rank: int, world_size: int, store: Any, *, beat_s: float | None = None,
                 window_s: float | None = None, store_timeout_s: float = STORE_TIMEOUT_S,
                 on_stuck: Callable[[dict], str] | None = None, still_watching: Callable[[], bool] | None = None,
                 report_dir: str | os.PathLike | None = None, exit_fn: Callable[[int], Any] = os._exit):
        global _generation
        self.bound_s, self.rank, self.world_size = float(bound_s), rank, world_size
        self.beat_s = float(beat_s) if beat_s is not None else beat_for(self.bound_s)
        self.window_s = float(window_s) if window_s is not None else max(3 * self.beat_s, self.bound_s / 4)
        if not 2 * self.beat_s <= self.window_s < self.bound_s:
            raise ValueError(f"the window ({self.window_s:g} s) must be at least two beats ({self.beat_s:g} s) and "
                             f"below the bound ({self.bound_s:g} s)")
        self.store, self.store_timeout_s = store, store_timeout_s
        self.on_stuck, self.still_watching, self.exit_fn = on_stuck, still_watching, exit_fn
        self.report_dir = Path(report_dir) if report_dir is not None else None
        _generation += 1
        self.prefix = (f"watchdog/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/"
                       f"{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{_generation}")
        self.host, self.seq, self.step = socket.gethostname(), 0, None
        self.phase_name, self.budget_s = "start", self.bound_s
        self.last = time.monotonic()
        self._stop, self._thread, self._io_thread = threading.Event(), None, None
        self._records: dict[int, dict] = {}

    # ---- the training thread's side ----------------------------------------------------------------------------------

    def progress(self, step: int | None = None) -> None:
        self.last = time.monotonic()
        if step is not None:
            self.step = step

    def set_phase(self, name: str, budget_s: float | None = None) -> None:
        self.phase_name, self.budget_s = name, float(budget_s) if budget_s is not None else self.bound_s
        self.progress()

    @contextlib.contextmanager
    def phase(self, name: str, budget_s: float | None = None):
        """A phase with its own budget: progress on entry and exit; peers waiting for this rank see its name and wait
        while it is within its budget."""
        old = (self.phase_name, self.budget_s)
        self.set_phase(name, budget_s)
        try:
            yield
        finally:
            self.set_phase(*old)

    def start(self, step: int | None = None) -> Watchdog:
        self.progress(step)
        with contextlib.suppress(Exception):
            self._beat()  # peers see this rank from now on
        self._thread = threading.Thread(target=self._run, name=f"watchdog-rank{self.rank}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None and not self._stop.is_set():
            self._stop.set()
            self._thread.join(self.beat_s + 2 * self.store_timeout_s + 1)
            self._off()

    def _off(self) -> None:
        self.phase_name = OFF  # peers never take this rank for a stopped one
        with contextlib.suppress(Exception):
            self._beat()

    # ---- the watchdog thread -----------------------------------------------------------------------------------------

    def _key(self, rank: int) -> str:
        return f"{self.prefix}/{rank}"

    def _record(self) -> bytes:
        self.seq += 1
        return json.dumps({"seq": self.seq, "step": self.step, "phase": self.phase_name, "budget_s": self.budget_s,
                           "idle_s": round(time.monotonic() - self.last, 1), "pid": os.getpid(),
                           "host": self.host}).encode()

    def _beat(self) -> None:
        record = self._record()
        self._io(lambda: self.store.set(self._key(self.rank), record))

    def _io(self, fn: Callable[[], Any]) -> Any:
        """``fn`` on a helper thread, waited for at most ``store_timeout_s`` (a store that does not answer must not
        block the watchdog); one at a time: while the last one hangs, the next fails at once."""
        if self._io_thread is not None and self._io_thread.is_alive():
            raise TimeoutError("the previous heartbeat store operation still has no answer")
        box: dict[str, Any] = {}

        def run():
            try:
                box["value"] = fn()
            except Exception as err:  # noqa: BLE001  (re-raised below when waited for)
                box["error"] = err

        self._io_thread = threading.Thread(target=run, name="watchdog-io", daemon=True)
        self._io_thread.start()
        self._io_thread.join(self.store_timeout_s)
        if self._io_thread.is_alive():
            raise TimeoutError(f"no answer in {self.store_timeout_s:g} s")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _read(self) -> dict[int, dict]:
        def read():
            keys = [self._key(r) for r in range(self.world_size)]
            return {r: json.loads(self.store.get(k)) for r, k in enumerate(keys) if self.store.check([k])}

        return self._io(read)

    def _run(self) -> None:
        base: tuple[float, dict] | None = None  # the first read of this stall: (time, records)
        waiting_logged = False
        while not self._stop.wait(self.beat_s):
            try:
                with contextlib.suppress(Exception):  # a failed beat shows in the peers' reads, not here
                    self._beat()
                idle = time.monotonic() - self.last
                if idle < self.bound_s - self.window_s:
                    base, waiting_logged = None, False
                    continue
                if self.still_watching is not None and not self.still_watching():
                    self._stop.set()  # training ended without on_train_end (it raised): nothing to watch
                    self._off()
                    return
                try:
                    records = self._read()
                except Exception as err:  # noqa: BLE001  (the store's host is stopped, or gone)
                    if idle >= self.bound_s:
                        self._fire("store", [], self._records, f"{type(err).__name__}: {err}")
                    continue
                self._records, now = records, time.monotonic()
                if base is None:
                    base = (now, records)
                    continue
                if now - base[0] < self.window_s:
                    continue
                verdict, ranks = decide(self.rank, self.world_size, base[1], records, idle, self.budget_s)
                if verdict != "wait":
                    self._fire(verdict, ranks, records, None, window_s=now - base[0])
                base = (now, records)  # the next decision compares against this read
                if verdict == "wait" and ranks and not waiting_logged:
                    waiting_logged = True
                    _say(f"[watchdog] rank {self.rank}: no progress for {idle:.0f} s (phase '{self.phase_name}'); "
                         "waiting for " + ", ".join(f"rank {r} in '{records[r]['phase']}' ({records[r]['idle_s']:.0f}"
                                                    f" s of its {records[r]['budget_s']:.0f} s)" for r in ranks))
            except Exception as err:  # noqa: BLE001  never die silently
                _say(f"[watchdog] rank {self.rank}: watchdog error (it keeps running): {type(err).__name__}: {err}")

    def _fire(self, verdict: str, ranks: list[int], records: dict[int, dict], error: str | None,
              window_s: float = 0.0) -> None:
        idle = time.monotonic() - self.last
        head = (f"[watchdog] rank {self.rank}/{self.world_size} ({self.host}, pid {os.getpid()}): no progress for "
                f"{idle:.1f} s (bound {self.bound_s:g} s, phase '{self.phase_name}', step {self.step})")
        named = "; ".join(describe(r, records.get(r)) for r in ranks)
        body = {
            "stopped": f"rank(s) {ranks} stopped: no heartbeat for {window_s:.1f} s (SIGSTOPped, frozen, swapped out, "
                       f"or its host is gone) - {named}",
            "gone": f"rank(s) {ranks} never started training or have left it while this rank waits for them - {named}",
            "stuck": "every rank is alive but none made progress within its budget (a deadlock: ranks in different "
                     "collectives, or a rank hung in its own code)" +
                     (f"; furthest behind: rank(s) {ranks}" if ranks else "") + " - " +
                     "; ".join(describe(r, records.get(r)) for r in range(self.world_size)),
            "store": f"the heartbeat store does not answer ({error}): the process hosting it (the launcher's agent, or "
                     "rank 0 under plain env://) is probably stopped; which rank stopped cannot be told",
        }[verdict]
        report = {"rank": self.rank, "world_size": self.world_size, "verdict": verdict, "ranks": ranks,
                  "idle_s": round(idle, 1), "bound_s": self.bound_s, "beat_s": self.beat_s, "window_s": self.window_s,
                  "phase": self.phase_name, "step": self.step, "records": records, "error": error,
                  "time": dt.datetime.now(dt.timezone.utc).isoformat(), "unix_time": time.time()}
        extra = ""
        if self.on_stuck is not None:
            try:
                extra = " " + self.on_stuck(report)
            except Exception as err:  # noqa: BLE001
                extra = f" (on_stuck failed: {type(err).__name__}: {err})"
        report["message"] = f"{head}: {body}.{extra} Ending this process with exit code {EXIT_CODE}."
        _say(report["message"])
        with contextlib.suppress(Exception):
            _say(f"[watchdog] rank {self.rank}: Python stacks of this process:")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        if self.report_dir is not None:
            with contextlib.suppress(Exception):
                self.report_dir.mkdir(parents=True, exist_ok=True)
                (self.report_dir / f"rank{self.rank}.json").write_text(json.dumps(report, indent=1, default=str))
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        self.exit_fn(EXIT_CODE)
        self._stop.set()  # only reached when exit_fn returns (tests)


def _say(msg: str) -> None:
    """To stderr in one write (ranks sharing the launcher's stream do not interleave), whatever logging does."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
        os.write(2, (msg + "\n").encode())


def _training(thread_id: int) -> Callable[[], bool]:
    """Whether that thread is still inside Trainer's training loop (a ``train()`` that raised never calls
    ``on_train_end``)."""

    def check() -> bool:
        f = sys._current_frames().get(thread_id)
        while f is not None and f.f_code.co_name != "_inner_training_loop":
            f = f.f_back
        return f is not None

    return check


class WatchdogCallback(TrainerCallback):
    """Runs a ``Watchdog`` from ``on_train_begin`` to ``on_train_end`` of a multi-process run (``stall_bound(args)``
    > 0) and marks progress at every step, micro-step, evaluation batch, evaluation, log and save; ``phase(name)``
    (a no-op when not watching) gives saves and evaluations ``max(bound, ddp_timeout)``. Its message names the
    trainer's last complete checkpoint."""

    def __init__(self, trainer):
        self.trainer, self.wd = trainer, None

    @classmethod
    def attach(cls, trainer) -> WatchdogCallback:
        callback = cls(trainer)
        trainer.add_callback(callback)
        return callback

    def phase(self, name: str):
        wd = self.wd
        if wd is None:
            return contextlib.nullcontext()
        return wd.phase(name, max(wd.bound_s, self.trainer.args.ddp_timeout))

    def where_to_resume(self, report: dict) -> str:
        t = self.trainer
        ckpt = t.run_folder.last_complete(t.curriculum)
        if ckpt is None:
            return f"No complete checkpoint in {t.args.output_dir} yet: the run restarts from the beginning."
        return f"Last complete checkpoint: {ckpt}; resume with --resume_from_checkpoint latest (or {ckpt})."

    def on_train_begin(self, args, state, control, **kwargs):
        import torch.distributed as dist

        self.stop()
        bound = stall_bound(args)
        if not bound or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        from torch.distributed.distributed_c10d import _get_default_store

        try:
            store = _get_default_store().clone()  # a connection of its own
            store.set_timeout(dt.timedelta(seconds=STORE_TIMEOUT_S))
        except Exception as err:  # noqa: BLE001  (a store that cannot be cloned: ddp_timeout alone bounds a stall)
            _say(f"[watchdog] not watching for stalls: the rendezvous store cannot be cloned ({err})")
            return
        self.wd = Watchdog(bound, dist.get_rank(), dist.get_world_size(), store, on_stuck=self.where_to_resume,
                           still_watching=_training(threading.get_ident()),
                           report_dir=Path(args.output_dir) / "watchdog")
        self.wd.set_phase("first step", max(bound, args.ddp_timeout))
        self.wd.start(state.global_step)

    def stop(self) -> None:
        if self.wd is not None:
            self.wd.stop()
            self.wd = None

    def _progress(self, state=None):
        if self.wd is not None:
            self.wd.progress(state.global_step if state is not None else None)

    def on_step_end(self, args, state, control, **kwargs):
        if self.wd is not None:
            self.wd.set_phase("train")
            self.wd.progress(state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):  # the curriculum's boundary, then Trainer's eval/save
        if self.wd is not None:
            self.wd.set_phase("epoch end", max(self.wd.bound_s, args.ddp_timeout))

    def on_step_begin(self, args, state, control, **kwargs):
        self._progress(state)

    def on_substep_end(self, args, state, control, **kwargs):
        self._progress()

    def on_prediction_step(self, args, state, control, **kwargs):
        self._progress()

    def on_evaluate(self, args, state, control, **kwargs):
        self._progress()

    def on_log(self, args, state, control, **kwargs):
        self._progress()

    def on_save(self, args, state, control, **kwargs):
        self._progress()

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()
