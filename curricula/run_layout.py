"""The run folder: every artifact's name, the one atomic-write helper, and readers that name the file on failure.

Layout of ``OUTPUT_DIR`` (``RunDir``)::

    run.json                      the run's identity: run_id, method, seed, domains, lineage (parent runs)
    curriculum/                   the curriculum log: epoch-NNN-<phase>.parquet, focus_reports.jsonl, table.arrow,
                                  plan.json (the plan sized in steps), reports.jsonl (every method's decisions)
    doremi/                       Group-DRO weights: domain_weights.json, weights_history.parquet, domain_weights.png
    training_config.json          the TrainingArguments (hub tokens masked)
    _data.json                    where the training data came from (a local path: '_' keeps it off the Hub)
    analysis/                     ``curricula analyze`` output
    checkpoint-N/curriculum/      the curriculum state of checkpoint N; COMPLETE is written last

Atomic writes: a temporary file next to the target, then ``os.replace``: a reader sees the old file or the new one,
never a partial one. Temporaries start with ``_`` because Trainer's Hub upload skips such names (a checkpoint push
may read the folder while we write). A full disk raises ``DiskFullError`` naming the path and the free space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curricula.errors import CorruptFileError, DiskFullError, MissingFileError

COMPLETE = "COMPLETE"  # written last into a checkpoint's curriculum folder
CHECKPOINT_PREFIX = "checkpoint"


def _free_space(path: Path) -> str:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return f"{shutil.disk_usage(p).free / 2**20:,.0f} MiB free on the file system of {p}"
            except OSError:
                break
    return "free space unknown"


def disk_full(path: Path, err: OSError) -> DiskFullError:
    return DiskFullError(
        f"no space left on the device while writing {path} ({_free_space(Path(path).parent)}): "
        f"{getattr(err, 'strerror', None) or err}; "
        "free some space (e.g. lower save_total_limit, delete old checkpoints) or write to another folder, then "
        "resume from the last complete checkpoint"
    )


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` writes the content to a temporary path; it then replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"_{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if err.errno == errno.ENOSPC:
            raise disk_full(path, err) from err
        raise
    except BaseException as err:
        _remove(tmp)
        if _is_enospc(err):
            raise disk_full(path, OSError(errno.ENOSPC, "No space left on device")) from err
        raise
    return path


def is_disk_full(err: BaseException) -> bool:
    return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or _is_enospc(err)


def _is_enospc(err: BaseException) -> bool:
    """torch and pyarrow report a full disk as their own errors ('unexpected pos', 'No space left')."""
    text = str(err)
    return "No space left" in text or "unexpected pos" in text or "ENOSPC" in text


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path, obj: Any, indent: int | None = 2, **kw) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, **kw) + "\n")


def write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_parquet(path, table) -> Path:
    import pyarrow.parquet as pq

    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_ipc(path, table) -> Path:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    def write(tmp: Path) -> None:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    return atomic_write(path, write)


def append_jsonl(path, record: dict) -> Path:
    """Append one line (an append is not atomic: readers skip a torn last line, see ``read_jsonl``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise disk_full(path, err) from err
        raise
    return path


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Write a folder under a temporary name and rename it into place when the block ends without error (an older
    folder of the same name is replaced). A crash leaves the older folder or nothing, never a partial one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"_{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f"_{target.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            _remove(old)
    except OSError as err:
        _remove(tmp)
        if err.errno == errno.ENOSPC:
            raise disk_full(target, err) from err
        raise
    except BaseException as err:
        _remove(tmp)
        if _is_enospc(err):
            raise disk_full(target, OSError(errno.ENOSPC, "No space left on device")) from err
        raise


# ---- readers that name the file -----------------------------------------------------------------------------------


def read_json(path, what: str = "file", fix: str | None = None) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(
            f"{what} {path} is corrupted ({type(err).__name__}: {err}); "
            + (fix or "delete it (or the checkpoint holding it) and resume from an earlier complete checkpoint")
        ) from None


def read_jsonl(path, what: str = "file") -> list[dict]:
    """Every line as JSON; a torn last line (a crash during an append) is dropped, any other bad line is an error
    that names the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise CorruptFileError(f"{what} {path} is not UTF-8 text ({err}); delete or restore it") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines):  # torn final append
                break
            raise CorruptFileError(f"{path}:{i}: not valid JSON ({err.msg}); fix or delete that line") from None
    return out


def read_table(path, what: str = "table"):
    """A Parquet or Arrow IPC file, memory-mapped where possible; a damaged file is named in the error."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        return ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as err:
        raise CorruptFileError(
            f"{what} {path} cannot be read ({err}); it is damaged: delete the checkpoint holding it and resume from "
            "an earlier complete one"
        ) from None


# ---- the run folder -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDir:
    """Every artifact path of one run's output folder (see the module docstring)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    run_json = property(lambda self: self.root / "run.json")
    curriculum = property(lambda self: self.root / "curriculum")
    plan_json = property(lambda self: self.curriculum / "plan.json")
    focus_reports = property(lambda self: self.curriculum / "focus_reports.jsonl")
    reports = property(lambda self: self.curriculum / "reports.jsonl")
    table = property(lambda self: self.curriculum / "table.arrow")
    doremi = property(lambda self: self.root / "doremi")
    training_config = property(lambda self: self.root / "training_config.json")
    data_json = property(lambda self: self.root / "_data.json")
    analysis = property(lambda self: self.root / "analysis")
    eval_results = property(lambda self: self.root / "eval_results.json")
    anneal_trigger = property(lambda self: self.root / "ANNEAL")

    def plan_file(self) -> Path:
        """``curriculum/plan.json``, or ``curriculum/run.json`` in run folders written before it was renamed."""
        legacy = self.curriculum / "run.json"
        return legacy if not self.plan_json.is_file() and legacy.is_file() else self.plan_json

    def epoch_log(self, index: int, kind: str) -> Path:
        return self.curriculum / f"epoch-{index:03d}-{kind}.parquet"

    def checkpoint(self, step: int) -> Path:
        return self.root / f"{CHECKPOINT_PREFIX}-{step}"

    def checkpoints(self) -> list[Path]:
        """Every ``checkpoint-N`` folder, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            head, _, tail = p.name.partition("-")
            if head == CHECKPOINT_PREFIX and tail.isdigit() and p.is_dir():
                found.append((int(tail), p))
        return [p for _, p in sorted(found)]

    def read_run(self) -> dict | None:
        return read_json(self.run_json, "run record") if self.run_json.is_file() else None

    def holds_a_run(self) -> bool:
        """Whether another run's artifacts are here (a curriculum log, a run record or checkpoints)."""
        return self.run_json.is_file() or self.curriculum.is_dir() or bool(self.checkpoints())


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# ---- checkpoints: which are complete, which to resume from --------------------------------------------------------

MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "pytorch_model_fsdp_0")
RESUME_LATEST = ("latest", "true", "True", "1")


DIGEST = "xxh3_128"  # fast (about 20 GB/s) and enough to detect corruption; not a defence against tampering
_CHUNK = 8 << 20


def file_digest(path: Path) -> str:
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest_files(folder: Path, exclude: tuple[str, ...] = (COMPLETE,)) -> dict[str, dict]:
    """Size and digest of every file under ``folder`` (relative paths), except ``exclude`` (top-level names) and
    temporaries (``_*.tmp``)."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not p.is_file() or rel in exclude or (p.name.startswith("_") and p.name.endswith(".tmp")):
            continue
        out[rel] = {"size": p.stat().st_size, DIGEST: file_digest(p)}
    return out


def verify_files(folder: Path, manifest: dict[str, dict]) -> list[str]:
    """Each file of ``manifest`` that is missing or differs from it (size first, then digest), named with expected
    and found values; empty when every file is as recorded. Files not in the manifest are not checked."""
    folder = Path(folder)
    problems = []
    for rel, want in sorted(manifest.items()):
        p = folder / rel
        if not p.is_file():
            problems.append(f"{rel} is missing")
            continue
        size = p.stat().st_size
        if size != want.get("size"):
            problems.append(f"{rel} has {size:,} bytes, {want.get('size'):,} when the checkpoint was written")
            continue
        if DIGEST in want:
            found = file_digest(p)
            if found != want[DIGEST]:
                problems.append(f"{rel} has {DIGEST} {found}, {want[DIGEST]} when the checkpoint was written")
    return problems


def checkpoint_problems(path: Path, curriculum: bool) -> list[str]:
    """Why a checkpoint cannot be resumed from: what it lacks (``checkpoint_missing``), else every file that differs
    from the completeness marker's manifest (a checkpoint written before manifests existed is not verified)."""
    missing = checkpoint_missing(path, curriculum)
    if missing:
        return [f"missing {', '.join(missing)}"]
    try:
        marker = json.loads((Path(path) / COMPLETE).read_text())
    except (OSError, ValueError) as err:
        return [f"its {COMPLETE} marker cannot be read ({err})"]
    files = marker.get("files") if isinstance(marker, dict) else None
    return verify_files(path, files) if isinstance(files, dict) else []


def checkpoint_missing(path: Path, curriculum: bool) -> list[str]:
    """What a complete checkpoint has and this one lacks (empty: complete). The marker is written last."""
    path = Path(path)
    missing = []
    if not (path / "trainer_state.json").is_file():
        missing.append("trainer_state.json")
    if not any((path / m).exists() for m in MODEL_FILES):
        missing.append("the model weights (model.safetensors)")
    if curriculum and not (path / "curriculum" / "state.json").is_file():
        missing.append("curriculum/state.json")
    if not (path / COMPLETE).is_file():
        missing.append(f"{COMPLETE} (the marker written last)")
    return missing


def resolve_resume(run_dir: str | os.PathLike, spec: str | bool | None, curriculum: bool,
                   warn: Callable[[str], None] = print) -> Path | None:
    """The checkpoint to resume from: ``None`` (a fresh run), ``True``/``"latest"`` (the newest checkpoint that is
    complete and whose files match its marker's manifest; newer ones are skipped with a warning naming what is wrong)
    or a path (refused when missing, incomplete or damaged, naming the file and the checkpoint to use instead)."""
    from curricula.errors import CheckpointError

    if spec is None or spec is False or spec == "":
        return None
    run = RunDir(run_dir)
    if spec is True or (isinstance(spec, str) and spec in RESUME_LATEST):
        damaged = []
        for p in reversed(run.checkpoints()):
            problems = checkpoint_problems(p, curriculum)
            if not problems:
                if damaged:
                    warn(f"resuming from {p}, the newest checkpoint whose files match its manifest")
                return p
            missing = checkpoint_missing(p, curriculum)
            if not missing:
                damaged.append(f"{p.name}: " + "; ".join(problems))
            warn(f"skipping {p}: incomplete (missing {', '.join(missing)}), written when the run stopped" if missing
                 else f"skipping {p}: damaged: " + "; ".join(problems))
        found = run.checkpoints()
        raise CheckpointError(
            f"--resume_from_checkpoint {spec}: {run.root} has no complete checkpoint"
            + (" that verifies (damaged: " + " | ".join(damaged) + ")" if damaged else
               f" ({len(found)} incomplete: {', '.join(p.name for p in found)})" if found else " (none at all)")
            + "; start anew (with --overwrite_output_dir if the folder holds an older run)")
    path = Path(spec)

    def instead() -> str:
        ok = next((p for p in reversed(run.checkpoints()) if p != path and not checkpoint_problems(p, curriculum)), None)
        return (f"resume from {ok} (the newest complete one) or with --resume_from_checkpoint latest" if ok
                else "no complete checkpoint is left: start anew with --overwrite_output_dir")

    if not path.exists():
        raise CheckpointError(f"--resume_from_checkpoint {path}: no such folder; {instead()}")
    missing = checkpoint_missing(path, curriculum)
    if missing:
        raise CheckpointError(f"{path} is incomplete (missing {', '.join(missing)}): it was being written when the run "
                              f"stopped, or it was not saved by a curricula run; {instead()}")
    problems = checkpoint_problems(path, curriculum)
    if problems:
        raise CheckpointError(f"{path} is damaged: " + "; ".join(problems) + "; its files changed after the checkpoint "
                              f"was complete (disk or copy error), so resuming from it would not continue the run; "
                              f"{instead()}")
    return path
