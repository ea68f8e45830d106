"""Which files of a run folder are published (``curricula push``), and the error for a folder that cannot be.

From a folder written by ``CurriculumTrainer`` (or ``curricula doremi`` / ``curricula continual``):

    model files at the top      config.json, generation_config.json, *.safetensors (+ index), tokenizer files
    curriculum/                 epoch-*.parquet, plan.json, focus_reports.jsonl, table.arrow (only if <= 100 MB)
    analysis/                   *.png, report.md, summary.json, fates.parquet (``curricula analyze``)
    doremi/                     domain_weights.json, weights_history.parquet, *.png, doremi.json

and never ``_data.json``/``data.json`` or the run record ``run.json`` (they hold local paths: the data, the parent
runs; the card shows the record without them), nor ``_*`` / ``*.tmp`` temporaries. ``checkpoint-*`` folders
and ``training_args.bin`` go only with ``include_checkpoints=True``. The card adds ``lr_schedule.png``,
``continual/continual.png`` and ``README.md`` (``curricula.report.card``).
"""

from __future__ import annotations

from pathlib import Path

from curricula.errors import CurriculaError

__all__ = ["HubPushError", "collect_run_files", "TABLE_MAX_BYTES", "MODEL_FILES", "TOKENIZER_FILES",
           "TOP_LEVEL_DOREMI", "LR_PLOT", "CONTINUAL_PLOT"]

TABLE_MAX_BYTES = 100 * 1024 * 1024
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors.index.json"}
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "added_tokens.json", "chat_template.jinja", "chat_template.json", "tokenizer.model"}
TOP_LEVEL_DOREMI = {"domain_weights.json", "doremi.json", "domain_weights_by_round.png"}
LR_PLOT = "lr_schedule.png"
CONTINUAL_PLOT = "continual/continual.png"


class HubPushError(CurriculaError):
    """A run that cannot be published: bad input for ``push_run`` (no repo id / token, not a run folder, ...), or a
    Hub that cannot be reached or refuses the token (the message says which, and what to do)."""


def _keep_top(name: str, include_checkpoints: bool) -> bool:
    if name.startswith("_"):
        return False
    if name in MODEL_FILES or name in TOKENIZER_FILES or name in TOP_LEVEL_DOREMI or name == LR_PLOT:
        return True
    if name.endswith(".safetensors") or name.endswith(".tiktoken"):
        return True
    return include_checkpoints and name == "training_args.bin"


def _keep_sub(folder: str, rel: str, path: Path) -> bool:
    name = Path(rel).name
    if name.endswith(".tmp") or name.startswith("_"):
        return False
    if folder == "curriculum":
        if name == "table.arrow":
            return path.stat().st_size <= TABLE_MAX_BYTES
        return "/" not in rel and (
            (name.startswith("epoch-") and name.endswith(".parquet")) or name in ("plan.json", "run.json", "focus_reports.jsonl"))
    if folder == "analysis":
        return "/" not in rel and (name.endswith(".png") or name in ("report.md", "summary.json", "fates.parquet"))
    if folder == "doremi":
        return name.endswith((".json", ".parquet", ".png", ".md"))
    return False


def collect_run_files(run_dir, include_checkpoints: bool = False) -> list[str]:
    """The run folder's files to upload, as sorted POSIX paths relative to ``run_dir`` (README.md not included)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HubPushError(f"run folder {run_dir} does not exist or is not a folder")
    out: list[str] = []
    for entry in sorted(run_dir.iterdir()):
        if entry.is_file() and _keep_top(entry.name, include_checkpoints):
            out.append(entry.name)
        elif entry.is_dir() and entry.name in ("curriculum", "analysis", "doremi"):
            for f in sorted(entry.rglob("*")):
                rel = f.relative_to(entry).as_posix()
                if f.is_file() and _keep_sub(entry.name, rel, f):
                    out.append(f"{entry.name}/{rel}")
        elif entry.is_dir() and include_checkpoints and entry.name.startswith("checkpoint-"):
            out.extend(f.relative_to(run_dir).as_posix() for f in sorted(entry.rglob("*"))
                       if f.is_file() and not f.name.startswith("_") and not f.name.endswith(".tmp"))
    if not any(p == "config.json" for p in out) and not any(p.endswith(".safetensors") for p in out):
        raise HubPushError(
            f"{run_dir} has no model (config.json / *.safetensors at the top); is this a run folder saved with "
            "trainer.save_model()?"
        )
    return out
