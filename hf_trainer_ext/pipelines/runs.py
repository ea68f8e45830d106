"""One training run of a pipeline, in its own folder: kept when finished, resumed when interrupted.

A pipeline (DoReMi's reference/proxy/main runs, continual's stages) reruns after a crash without retraining what is
done: a finished run leaves ``curricula-done.json`` with its settings' fingerprint and its result, and is reused when
the settings match (refused, with the folder named, when they do not); an interrupted run resumes from its newest
complete checkpoint (pipelines checkpoint by default); a run that never reached a complete checkpoint starts anew.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curricula.errors import RunFolderError
from curricula.run_layout import (CHECKPOINT_PREFIX, RunDir, checkpoint_problems, digest_files, read_json, verify_files,
                                  write_json)

DONE = "curricula-done.json"


def _normal(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


@dataclass
class PipelineRun:
    out: Path
    fingerprint: dict
    steps: int

    def __post_init__(self):
        self.out = Path(self.out)
        self.fingerprint = _normal(self.fingerprint)

    def finished(self) -> dict | None:
        """The result of a finished run with these settings, or None."""
        path = self.out / DONE
        if not path.is_file():
            return None
        doc = read_json(path, "finished-run record")
        problems = verify_files(self.out, doc.get("files") or {})
        if problems:
            raise RunFolderError(
                f"{self.out} holds a finished run whose files changed after it finished: " + "; ".join(problems)
                + "; its result cannot be reused: delete that folder to retrain it (later runs of the pipeline that "
                "were built on it are retrained too when their settings change)")
        if doc.get("fingerprint") != self.fingerprint:
            saved = doc.get("fingerprint") or {}
            keys = sorted(k for k in set(saved) | set(self.fingerprint) if saved.get(k) != self.fingerprint.get(k))
            raise RunFolderError(
                f"{self.out} holds a finished run with other settings (differs in {', '.join(keys)}); a rerun would "
                "mix them: use another --out, or delete that folder to retrain it")
        _say(f"reusing the finished run in {self.out} (same settings; its files verified)")
        return doc["result"]

    def resume(self) -> str | None:
        """``"latest"`` when the run has a complete checkpoint that verifies to continue from, else None (start
        anew). Decided once per run (the check reads every checkpoint file)."""
        if not hasattr(self, "_resume"):
            run = RunDir(self.out)
            good = [p for p in run.checkpoints() if not checkpoint_problems(p, curriculum=True)]
            self._resume = "latest" if good else None
            if good:
                _say(f"resuming the interrupted run in {self.out} from {good[-1].name}")
        return self._resume

    def training_args(self) -> dict:
        """Checkpoint by default (a quarter of the run apart, the newest one kept); a folder without a complete
        checkpoint is the leftover of a crash before the first one: start it anew."""
        return {"save_strategy": "steps", "save_steps": max(1, self.steps // 4), "save_total_limit": 1,
                "overwrite_output_dir": self.resume() is None}

    def done(self, result: dict) -> dict:
        from accelerate import PartialState

        result = _normal(result)
        if PartialState().is_main_process:  # the run's files (not its checkpoints), verified when it is reused
            files = {k: v for k, v in digest_files(self.out, exclude=(DONE,)).items()
                     if not k.startswith(f"{CHECKPOINT_PREFIX}-")}
            write_json(self.out / DONE, {"fingerprint": self.fingerprint, "result": result, "files": files})
        PartialState().wait_for_everyone()
        return result


def _say(message: str) -> None:
    """A pipeline's progress line (main process only)."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(f"curricula: {message}", flush=True)


def data_identity(meta: dict) -> dict:
    """What identifies packed data for a fingerprint: tokenizer, block size, domains and their block counts."""
    train = meta["splits"]["train"]
    return {"tokenizer": meta["tokenizer"].get("vocab_sha256"), "block_size": meta["block_size"],
            "domains": {n: d.get("blocks") for n, d in train["domains"].items()}}


def eval_curve(log_history: list[dict]) -> list[dict]:
    """A run's evaluations from Trainer's log history: step, eval loss, average and worst domain perplexity."""
    return [{"step": h["step"], "loss": h["eval_loss"], "ppl_avg": h.get("eval_ppl_avg"),
             "ppl_worst": h.get("eval_ppl_worst")} for h in log_history if "eval_loss" in h]
