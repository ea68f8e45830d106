"""Publish a curricula run folder to the Hugging Face Hub (``curricula push RUN_DIR --repo-id ...``).

``push_run`` uploads, from a folder written by ``CurriculumTrainer`` (or ``curricula doremi``):

    model files at the top      config.json, generation_config.json, *.safetensors (+ index), tokenizer files
    curriculum/                 epoch-*.parquet, run.json, focus_reports.jsonl, table.arrow (only if <= 100 MB)
    analysis/                   *.png, report.md, summary.json, fates.parquet (``curricula analyze``)
    doremi/                     domain_weights.json, weights_history.parquet, *.png, doremi.json
    README.md                   a model card generated here (YAML front matter + a run summary)

and never ``data.json`` (local paths). ``checkpoint-*`` folders and ``training_args.bin`` go only with
``include_checkpoints=True``. The run folder is never modified: the upload is staged in a temporary folder (hard
links where possible). The token comes from the ``token`` argument or ``HF_TOKEN`` and is never printed or written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

TABLE_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_COMMIT_MESSAGE = "Upload curricula run"
CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "run_card.md"

MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors.index.json"}
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "added_tokens.json", "chat_template.jinja", "chat_template.json", "tokenizer.model"}
TOP_LEVEL_DOREMI = {"domain_weights.json", "doremi.json", "domain_weights_by_round.png"}
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_RE = re.compile(rf"^(?:{_REPO_PART}/)?{_REPO_PART}$")

_FALLBACK_TEMPLATE = """---
{{front_matter}}
---

# {{repo_name}}

A causal language model pretrained with `curricula`, method `{{method}}`.

{{sections}}

## Files

{{files}}
"""


class HubPushError(ValueError):
    """Bad input for ``push_run`` (no repo id / token, not a run folder, ...)."""


def check_repo_id(repo_id: str | None) -> str:
    if not repo_id or not str(repo_id).strip():
        raise HubPushError("no repo id: pass --repo-id NAME or --repo-id NAMESPACE/NAME (e.g. my-org/lfr-tiny)")
    repo_id = str(repo_id).strip()
    if not _REPO_RE.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise HubPushError(
            f"invalid repo id {repo_id!r}: use NAME or NAMESPACE/NAME with letters, digits, '-', '_' or '.' "
            "(at most 96 characters each, no '--' or '..', not starting or ending with '-' or '.')"
        )
    return repo_id


def resolve_token(token: str | None) -> str:
    token = token or os.environ.get("HF_TOKEN")
    if not token or not token.strip():
        raise HubPushError(
            "no Hugging Face token: set the HF_TOKEN environment variable (a write token from "
            "https://huggingface.co/settings/tokens) or pass token=... (the token is never printed)"
        )
    return token.strip()


def _keep_top(name: str, include_checkpoints: bool) -> bool:
    if name in MODEL_FILES or name in TOKENIZER_FILES or name in TOP_LEVEL_DOREMI:
        return True
    if name.endswith(".safetensors") or name.endswith(".tiktoken"):
        return True
    return include_checkpoints and name == "training_args.bin"


def _keep_sub(folder: str, rel: str, path: Path) -> bool:
    name = Path(rel).name
    if name.endswith(".tmp"):
        return False
    if folder == "curriculum":
        if name == "table.arrow":
            return path.stat().st_size <= TABLE_MAX_BYTES
        return "/" not in rel and (
            (name.startswith("epoch-") and name.endswith(".parquet")) or name in ("run.json", "focus_reports.jsonl"))
    if folder == "analysis":
        return "/" not in rel and (name.endswith(".png") or name in ("report.md", "summary.json", "fates.parquet"))
    if folder == "doremi":
        return name.endswith((".json", ".parquet", ".png", ".md"))
    return False


def collect_run_files(run_dir: Path, include_checkpoints: bool = False) -> list[str]:
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
            out.extend(f.relative_to(run_dir).as_posix() for f in sorted(entry.rglob("*")) if f.is_file())
    if not any(p == "config.json" for p in out) and not any(p.endswith(".safetensors") for p in out):
        raise HubPushError(
            f"{run_dir} has no model (config.json / *.safetensors at the top); is this a run folder saved with "
            "trainer.save_model()?"
        )
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tag(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "run"


def _method(run_dir: Path) -> str:
    info = _read_json(run_dir / "curriculum" / "run.json") or {}
    name = (info.get("plan") or {}).get("name")
    if name:
        return _tag(name)
    if (run_dir / "doremi" / "domain_weights.json").is_file() or (run_dir / "domain_weights.json").is_file():
        return "doremi"
    return "pretraining"


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else ("—" if x is None else str(x))


def _drop(x) -> str:
    return "—" if x is None else f"{float(x):g}"


def _plan_section(info: dict) -> str:
    plan = info.get("plan") or {}
    lines = ["## Curriculum", "", f"Plan `{plan.get('name', '?')}`"
             + (f" ({json.dumps(plan['params'])})" if plan.get("params") else "")
             + f"; seed {info.get('seed', '?')}, global batch {info.get('global_batch', '?')}, "
             f"{info.get('n_blocks', '?')} blocks, {info.get('total_steps', '?')} optimizer steps."]
    if info.get("domain_names"):
        lines += ["", "Domains: " + ", ".join(f"`{d}`" for d in info["domain_names"]) + "."]
    epochs = info.get("epochs") or []
    if epochs:
        lines += ["", "| epoch | phase | drop % | blocks | steps |", "|---|---|---|---|---|"]
        lines += [f"| {e.get('index')} | {e.get('kind')} | {_drop(e.get('drop_percent'))} | {e.get('blocks')} | "
                  f"{e.get('steps')} |" for e in epochs]
    lines += ["", "The per-block loss log is in `curriculum/epoch-*.parquet` (one row per trained block: block_id, "
              "domain_id, epoch, phase, phase_index, step, loss)."]
    return "\n".join(lines)


def _doremi_section(doc: dict) -> str:
    weights = doc.get("weights") or {}
    lines = ["## DoReMi domain weights", "", "| domain | weight |", "|---|---|"]
    lines += [f"| {d} | {float(w):.4f} |" for d, w in weights.items()]
    return "\n".join(lines)


def _analysis_section(summary: dict, files: list[str]) -> str:
    lines = ["## Analysis", ""]
    s = summary.get("summary") or {}
    fr = s.get("fractions") or {}
    if fr:
        lines += ["| blocks | learned | unlearned | forgotten | forgotten ≥ 2× (share of forgotten) |",
                  "|---|---|---|---|---|",
                  f"| {s.get('blocks', '?')} | {_fmt(fr.get('learned'))} | {_fmt(fr.get('unlearned'))} | "
                  f"{_fmt(fr.get('forgotten'))} | {_fmt(s.get('forgotten_multiple_share'))} |", ""]
    if "analysis/report.md" in files:
        lines.append("Full report: [analysis/report.md](analysis/report.md).")
    plots = [f for f in files if f.startswith("analysis/") and f.endswith(".png")]
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines)


CONFIG_KEYS = ("curriculum", "curriculum_params", "domain_weights", "lr_schedule", "learning_rate", "lr_scheduler_type",
               "warmup_steps", "weight_decay", "per_device_train_batch_size", "gradient_accumulation_steps",
               "max_steps", "num_train_epochs", "seed", "bf16", "fp16")


def _config_section(config: dict) -> str:
    rows = [f"| `{k}` | `{json.dumps(config[k]) if isinstance(config[k], (dict, list)) else config[k]}` |"
            for k in CONFIG_KEYS if k in config and config[k] not in (None, "", -1)]
    return "## Training configuration\n\n| argument | value |\n|---|---|\n" + "\n".join(rows)


def _eval_results(evals: dict):
    from huggingface_hub import EvalResult

    out = []
    for name, r in (evals.get("tasks") or {}).items():
        for metric in ("accuracy", "accuracy_norm"):
            if metric in r:
                out.append(EvalResult(task_type="text-generation", dataset_type=f"curricula/{name}", dataset_name=name,
                                      metric_type=metric, metric_value=float(r[metric])))
    return out or None


def _results_section(evals: dict) -> str:
    rows = [f"| {name} | {r.get('kind', '')} | {r.get('n', '')} | {_fmt(r.get('accuracy'))} | "
            f"{_fmt(r['accuracy_norm']) if 'accuracy_norm' in r else ''} |" for name, r in evals["tasks"].items()]
    return ("## Zero-shot results\n\nScored by log-likelihood with `curricula eval` on held-out tasks.\n\n"
            "| task | kind | n | accuracy | accuracy (length-normalised) |\n|---|---|---:|---:|---:|\n" + "\n".join(rows))


def render_card(run_dir: Path, repo_id: str, files: list[str], license: str = "apache-2.0") -> str:  # noqa: A002
    """The model card (README.md) for ``run_dir``: YAML front matter + a summary of the run."""
    from huggingface_hub import ModelCardData

    run_dir = Path(run_dir)
    method = _method(run_dir)
    tags = ["curricula"] + ([method] if method != "curricula" else [])
    evals = _read_json(run_dir / "eval_results.json")
    eval_results = _eval_results(evals) if isinstance(evals, dict) else None
    front = ModelCardData(library_name="transformers", license=license, tags=tags, pipeline_tag="text-generation",
                          model_name=repo_id.split("/")[-1] if eval_results else None,
                          eval_results=eval_results).to_yaml()
    sections = []
    config = _read_json(run_dir / "training_config.json")
    if isinstance(config, dict):
        sections.append(_config_section(config))
    if isinstance(evals, dict) and evals.get("tasks"):
        sections.append(_results_section(evals))
    info = _read_json(run_dir / "curriculum" / "run.json")
    if isinstance(info, dict):
        sections.append(_plan_section(info))
    weights = _read_json(run_dir / "doremi" / "domain_weights.json") or _read_json(run_dir / "domain_weights.json")
    if isinstance(weights, dict) and weights.get("weights"):
        sections.append(_doremi_section(weights))
    summary = _read_json(run_dir / "analysis" / "summary.json")
    if isinstance(summary, dict) or any(f.startswith("analysis/") for f in files):
        sections.append(_analysis_section(summary if isinstance(summary, dict) else {}, files))
    has_tok = any(f in TOKENIZER_FILES for f in files)
    template = CARD_TEMPLATE.read_text() if CARD_TEMPLATE.is_file() else _FALLBACK_TEMPLATE
    values = {
        "front_matter": front.strip(),
        "repo_id": repo_id,
        "repo_name": repo_id.split("/")[-1],
        "method": method,
        "tokenizer_line": f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")' if has_tok
        else "# no tokenizer files were uploaded with this run",
        "sections": "\n\n".join(sections) if sections else "No curriculum log was found in the run folder.",
        "files": "\n".join(f"- `{f}`" for f in files),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _stage(run_dir: Path, files: list[str], dest: Path) -> None:
    for rel in files:
        src, dst = run_dir / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def push_run(
    run_dir,
    repo_id: str,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    *,
    license: str = "apache-2.0",  # noqa: A002
    include_checkpoints: bool = False,
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` (if needed) and upload the run folder; returns the commit URL.

    ``endpoint`` defaults to ``HF_ENDPOINT`` read now (huggingface_hub reads it only at import), else huggingface.co.
    """
    repo_id = check_repo_id(repo_id)
    token = resolve_token(token)
    run_dir = Path(run_dir)
    files = collect_run_files(run_dir, include_checkpoints=include_checkpoints)
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    with tempfile.TemporaryDirectory(prefix="curricula-push-") as tmp:
        stage = Path(tmp)
        _stage(run_dir, files, stage)
        (stage / "README.md").write_text(render_card(run_dir, repo_id, files, license=license))
        url = api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
        target = getattr(url, "repo_id", None) or repo_id
        with warnings.catch_warnings():  # the Parquet / Arrow logs are meant for the model repo
            warnings.filterwarnings("ignore", message=".*commit a data file.*", category=UserWarning)
            info = api.upload_folder(folder_path=stage, repo_id=target, repo_type="model", revision=revision,
                                     commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
