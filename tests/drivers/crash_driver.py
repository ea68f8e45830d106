"""Run by tests/integration/test_crash_harness.py: kill an LFR training run with SIGKILL at many points, resume it, compare.

argv: WORK_DIR [MAX_POINTS]. The parent process only imports; every run happens in a forked child (one thread), so a
kill costs no interpreter start-up. For each kill point: a child trains until the point and SIGKILLs itself; a second
child resumes with ``resume_from_checkpoint=True``. The resumed run must end with the uninterrupted run's curriculum
log, focus reports, index table, model weights and logged losses, bit for bit; or the resume must refuse with a named
``CurriculaError`` while a complete checkpoint (or, before the first one, a fresh start) gives the same end. Prints a
JSON summary on the last line.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"

import curricula.run_layout as layout  # noqa: E402
import hf_trainer_ext.boundary as boundary_mod  # noqa: E402
import hf_trainer_ext.checkpoints as checkpoints_mod  # noqa: E402
import hf_trainer_ext.trainer as trainer_mod  # noqa: E402
from curricula.errors import CurriculaError  # noqa: E402
from hf_trainer_ext import CurriculumTrainer  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import blocks, plan_file, targs, tiny_gpt2  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages
import datasets  # noqa: E402,F401  (support imports these lazily: import them once here, before the forks)
from transformers import GPT2LMHeadModel  # noqa: E402,F401
from transformers import Trainer  # noqa: E402

PLAN = "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 2}, {kind: review, epochs: 1}]"
# where a SIGKILL can land: (module or class, attribute). "mid" kills an atomic write after its temporary is written.
TARGETS = {
    "training_step": (Trainer, "training_step"),
    "save_model": (CurriculumTrainer, "save_model"),
    "rng_state": (Trainer, "_save_rng_state"),
    "curriculum_state": (checkpoints_mod, "atomic_dir"),
    "marker": (checkpoints_mod.CheckpointIO, "mark_complete"),
    "rotation": (checkpoints_mod, "rotate_checkpoints"),
    "epoch_log": (boundary_mod, "write_epoch_log"),
    "atomic_write": (layout, "atomic_write"),
    "atomic_write_mid": (layout, "atomic_write"),
}
COUNTS = {name: 0 for name in TARGETS}


def instrument(kill: tuple[str, int] | None) -> None:
    """Count every target's calls; SIGKILL this process at call ``kill[1]`` of target ``kill[0]``."""
    for name, (owner, attr) in TARGETS.items():
        if name == "atomic_write_mid":
            continue
        real = getattr(owner, attr)

        def wrapper(*a, __real=real, __name=name, **kw):
            COUNTS[__name] += 1
            if __name == "atomic_write":
                COUNTS["atomic_write_mid"] += 1
                if kill == ("atomic_write_mid", COUNTS["atomic_write_mid"]):
                    write = a[1]

                    def write_then_die(tmp):
                        write(tmp)
                        os.kill(os.getpid(), signal.SIGKILL)

                    a = (a[0], write_then_die)
            if kill == (__name, COUNTS[__name]):
                os.kill(os.getpid(), signal.SIGKILL)
            return __real(*a, **kw)

        setattr(owner, attr, wrapper)


def train(out: Path, plan: str, resume=None, overwrite=False) -> None:
    import torch

    torch.set_num_threads(1)
    args = targs(out, curriculum=plan, save_strategy="steps", save_steps=2, save_total_limit=1, logging_steps=1,
                 overwrite_output_dir=overwrite)
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks())
    tr.train(resume_from_checkpoint=resume)
    tr.save_model()


def in_child(fn, kill=None, error_file: Path | None = None) -> str:
    """Run ``fn`` in a forked child: 'killed', 'ok', 'refused' (a CurriculaError, message in error_file) or 'crashed'."""
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            instrument(kill)
            fn()
            if error_file is not None:
                error_file.with_suffix(".counts").write_text(json.dumps(COUNTS))
            code = 0
        except CurriculaError as err:
            if error_file is not None:
                error_file.write_text(f"{type(err).__name__}: {err}")
            code = 3
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    return {0: "ok", 3: "refused"}.get(os.WEXITSTATUS(status), "crashed")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fingerprint(out: Path) -> dict:
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file

    log = out / "curriculum"
    weights = load_file(str(out / "model.safetensors"))
    state = json.loads((sorted(out.glob("checkpoint-*"))[-1] / "trainer_state.json").read_text())
    logged = [[h["step"], k, v] for h in state["log_history"] for k, v in sorted(h.items())
              if isinstance(v, float) and ("loss" in k or "ppl" in k or k.startswith("curriculum/"))]
    return {
        "epoch_logs": {p.name: pq.read_table(p).to_pydict() for p in sorted(log.glob("epoch-*.parquet"))},
        "focus_reports": (log / "focus_reports.jsonl").read_text(),
        "table": digest(log / "table.arrow"),
        "weights": hashlib.sha256(b"".join(weights[k].tobytes() for k in sorted(weights))).hexdigest()[:16],
        "logged": logged,
        # a kill between the last save and its rotation leaves one more (complete, older) checkpoint: not a loss
        "last_checkpoint": sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1].name,
    }


def main() -> int:
    work, max_points = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 100
    work.mkdir(parents=True, exist_ok=True)
    plan = plan_file(work, PLAN)
    ref = work / "reference"
    assert in_child(lambda: train(ref, plan), error_file=work / "reference.err") == "ok"
    calls = json.loads((work / "reference.counts").read_text())  # how often each target runs in a whole run
    expected = fingerprint(ref)
    points = []
    for name, n in calls.items():
        picks = sorted({1, n} | {round(n * f) for f in (0.25, 0.5, 0.75)}) if n > 0 else []
        points += [(name, k) for k in picks if k >= 1]
    points = points[:max_points]
    results = []
    for i, kill in enumerate(points):
        out = work / f"run{i}"
        first = in_child(lambda: train(out, plan), kill=kill, error_file=work / f"run{i}.err")
        if first != "killed":  # the point was not reached in a run (e.g. a count past the end)
            results.append({"kill": kill, "first": first})
            continue
        resumed = in_child(lambda: train(out, plan, resume=True), error_file=work / f"run{i}.resume.err")
        entry = {"kill": kill, "first": first, "resume": resumed}
        if resumed == "refused":
            entry["message"] = (work / f"run{i}.resume.err").read_text()
            complete = [p for p in layout.RunDir(out).checkpoints() if not layout.checkpoint_missing(p, True)]
            entry["complete_left"] = [p.name for p in complete]
            if not complete:  # killed before the first checkpoint was complete: start anew
                entry["restart"] = in_child(lambda: train(out, plan, overwrite=True))
        finished = entry.get("restart", resumed) == "ok"
        entry["identical"] = finished and fingerprint(out) == expected
        if finished and not entry["identical"]:
            got = fingerprint(out)
            entry["differs"] = [k for k in expected if got[k] != expected[k]]
        results.append(entry)
    print(json.dumps({"calls": calls, "points": len(points), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
