"""The run folder's guard and record: one run per ``output_dir``, and ``run.json`` saying which.

A fresh run refuses a folder holding another run's curriculum log, run record or checkpoints (their logs would mix)
unless told to overwrite; a resume refuses a checkpoint whose run id is not the folder's. ``run.json`` records the
run's identity: run id, method and its configuration, seed, domains, tokenizer, lineage (the runs it builds on).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from curricula.errors import CheckpointError, RunFolderError
from curricula.run_layout import (COMPLETE, RunDir, checkpoint_missing, new_run_id, read_json, resolve_resume,
                                  write_json)

RUN_FORMAT = "curricula-run/1"


class RunFolder:
    """``claim`` (fresh runs) and ``check_same_run`` (resumes) are collective: every process calls them."""

    def __init__(self, root: str | Path, accelerator, should_save: bool):
        self.dir = RunDir(root)
        self.accelerator, self.should_save = accelerator, should_save

    def check_writable(self) -> None:
        """The output folder can be written (a read-only file system or folder is refused before any work)."""
        import os
        import tempfile

        if not self.should_save:
            return
        try:
            self.dir.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix="_write-check-", dir=self.dir.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise RunFolderError(f"output_dir {self.dir.root} cannot be written ({err.strerror or err}): the run "
                                 "could save no checkpoint or log; choose a writable --output_dir") from None

    def claim(self, overwrite: bool) -> None:
        """A fresh run: refuse a folder holding another run's artifacts, unless asked to overwrite them."""
        run = self.dir
        taken = run.holds_a_run()
        self.accelerator.wait_for_everyone()  # every process has looked before the main one writes or deletes
        if not taken:
            return
        if not overwrite:
            record = run.read_run() or {}
            what = ", ".join(filter(None, [
                f"run {record.get('run_id')} ({record.get('method')})" if record else None,
                "a curriculum log" if run.curriculum.is_dir() else None,
                f"{len(run.checkpoints())} checkpoint(s)" if run.checkpoints() else None]))
            raise RunFolderError(
                f"{run.root} holds another run ({what}); a new run would mix its logs with that one's. Resume it "
                "with --resume_from_checkpoint latest, start anew there with --overwrite_output_dir (deletes its "
                "curriculum log, run record and checkpoints), or use another --output_dir")
        if self.should_save:
            for p in [run.curriculum, run.doremi, run.analysis, *run.checkpoints()]:
                shutil.rmtree(p, ignore_errors=True)
            run.run_json.unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()

    def check_same_run(self, ckpt: Path) -> None:
        record = self.dir.read_run() or {}
        marker = read_json(ckpt / COMPLETE, "checkpoint marker")
        if record.get("run_id") and marker.get("run_id") and record["run_id"] != marker["run_id"]:
            raise RunFolderError(
                f"{ckpt} belongs to run {marker['run_id']}, but {self.dir.run_json} records run "
                f"{record['run_id']}: resuming would continue one run's training with another's log; resume it in its "
                "own output_dir, or start anew with --overwrite_output_dir")

    def last_complete(self, curriculum) -> Path | None:
        """The newest complete checkpoint (what to resume from), or None."""
        complete = [p for p in self.dir.checkpoints() if not checkpoint_missing(p, curriculum is not None)]
        return complete[-1] if complete else None

    def resolve_resume(self, spec, curriculum: bool, warn) -> Path | None:
        """``run_layout.resolve_resume`` (which verifies the checkpoint's files against its manifest) on the main
        process only, its answer (or its refusal) given to every process; first, the folder must be writable."""
        self.check_writable()
        if self.accelerator.num_processes == 1:
            return resolve_resume(self.dir.root, spec, curriculum=curriculum, warn=warn)
        from accelerate.utils import broadcast_object_list

        answer = [None, None]
        if self.accelerator.is_main_process:
            try:
                answer[0] = resolve_resume(self.dir.root, spec, curriculum=curriculum, warn=warn)
            except CheckpointError as err:
                answer[1] = str(err)
        broadcast_object_list(answer)
        if answer[1] is not None:
            raise CheckpointError(answer[1])
        return None if answer[0] is None else Path(answer[0])

    def run_id(self) -> str | None:
        try:
            return (self.dir.read_run() or {}).get("run_id")
        except Exception:  # noqa: BLE001  (a checkpoint marker must not fail on a damaged run record)
            return None

    def write_record(self, resumed: bool, trainer) -> None:
        """``run.json`` and the plan sized in steps (main process); the run id and creation time survive resumes."""
        if not self.should_save:
            return
        previous = self.dir.read_run() if resumed else None
        cur, config = trainer.curriculum, trainer.curriculum_config
        write_json(self.dir.run_json, {
            "format": RUN_FORMAT,
            "run_id": (previous or {}).get("run_id") or new_run_id(),
            "method": cur.name if cur is not None else "none",
            "curriculum": config.to_dict() if config is not None else None,
            "seed": trainer.args.seed,
            "domain_names": trainer.domain_names,
            "tokenizer": trainer.tokenizer_identity,
            "lineage": trainer.lineage,
            "loss_type_note": trainer.loss_type_note,
            "created": (previous or {}).get("created") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        })
        plan = cur.plan_info() if cur is not None else None
        if plan is not None:
            write_json(self.dir.plan_json, plan)
        if cur is not None and "block_records" in cur.needs and not self.dir.data_json.is_file():
            self.record_blocks(trainer)

    def record_blocks(self, trainer) -> None:
        """Where the analysis finds the text of the blocks the curriculum log names (``_data.json``; the ``_``
        keeps local paths off the Hub): the data's Arrow files when it is read from disk, else (in-memory data, e.g.
        ``pack_dataset`` in a user's script) a copy of the blocks' tokens in ``_blocks.arrow``; the tokenizer is the
        one saved next to the model (``processing_class``)."""
        from curricula.run_layout import write_ipc

        ds = getattr(trainer.train_dataset, "ds", None)
        if ds is None:
            return
        files = [f["filename"] for f in getattr(ds, "cache_files", None) or []]
        info = {"tokenizer": ".", "tokenizer_identity": trainer.tokenizer_identity}
        if files and ds._indices is None:
            info["arrow"] = files
        else:
            import pyarrow as pa

            table = ds.flatten_indices().data.table if ds._indices is not None else ds.data.table
            write_ipc(self.dir.root / "_blocks.arrow", pa.table({"block_id": table.column("block_id"),
                                                                 "input_ids": table.column("input_ids")}))
            info["blocks"] = "_blocks.arrow"
        write_json(self.dir.data_json, info)
