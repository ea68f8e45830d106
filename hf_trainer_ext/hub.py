"""Publish a curricula run folder to the Hugging Face Hub (``curricula push RUN_DIR --repo-id ...``).

``push_run`` uploads, from a folder written by ``CurriculumTrainer`` (or ``curricula doremi``):

    model files at the top      config.json, generation_config.json, *.safetensors (+ index), tokenizer files
    curriculum/                 epoch-*.parquet, run.json, focus_reports.jsonl, table.arrow (only if <= 100 MB)
    analysis/                   *.png, report.md, summary.json, fates.parquet (``curricula analyze``)
    doremi/                     domain_weights.json, weights_history.parquet, *.png, doremi.json
    lr_schedule.png             the learning-rate curve, drawn here from the logged LRs or the curricula schedule
    continual/continual.png     for one stage of ``curricula continual`` (the parent folder's loss curves)
    README.md                   a model card generated here (YAML front matter + a run summary)

and never ``_data.json``/``data.json`` (local paths). ``checkpoint-*`` folders and ``training_args.bin`` go only with
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
from typing import Any
from curricula.errors import CurriculaError

TABLE_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_COMMIT_MESSAGE = "Upload curricula run"
CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "run_card.md"

MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors.index.json"}
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "added_tokens.json", "chat_template.jinja", "chat_template.json", "tokenizer.model"}
TOP_LEVEL_DOREMI = {"domain_weights.json", "doremi.json", "domain_weights_by_round.png"}
LR_PLOT = "lr_schedule.png"
CONTINUAL_PLOT = "continual/continual.png"
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


class HubPushError(CurriculaError):
    """Bad input for ``push_run`` (no repo id / token, not a run folder, ...)."""


class HubToken(str):
    """A hub token that is a plain ``str`` to HTTP code but pickles as ``None`` (and shows as ``'<HUB_TOKEN>'``).

    Why: ``Trainer`` writes ``torch.save(self.args)`` (``training_args.bin``) into every checkpoint and into
    ``output_dir`` right before ``push_to_hub`` / ``hub_strategy`` uploads them, and a ``TrainingArguments`` pickle
    holds ``hub_token`` in clear text (``to_dict`` masks it, pickling does not): the token would be published.
    """

    __slots__ = ()

    def __reduce_ex__(self, protocol):  # unpickles as None: training_args.bin keeps no token
        return (type(None), ())

    def __deepcopy__(self, memo) -> "HubToken":  # deepcopy would otherwise go through __reduce_ex__ and lose it
        return self

    def __copy__(self) -> "HubToken":
        return self

    def __repr__(self) -> str:
        return "'<HUB_TOKEN>'"


def protect_hub_token(args) -> None:
    """Wrap ``args.hub_token`` in ``HubToken`` (in place) so no pickle of ``args`` carries it; pushes still use it."""
    token = getattr(args, "hub_token", None)
    if isinstance(token, str) and token and not isinstance(token, HubToken):
        args.hub_token = HubToken(token)


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
    if name in MODEL_FILES or name in TOKENIZER_FILES or name in TOP_LEVEL_DOREMI or name == LR_PLOT:
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
    if continual_context(run_dir) is not None:
        return "continual"
    if (run_dir / "doremi" / "domain_weights.json").is_file() or (run_dir / "domain_weights.json").is_file() or (
            run_dir.name == "main" and (run_dir.parent / "domain_weights.json").is_file()):
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


def _doremi_section(doc: dict, files: list[str]) -> str:
    weights = doc.get("weights") or {}
    lines = ["## DoReMi domain weights", "", "| domain | weight |", "|---|---|"]
    lines += [f"| {d} | {float(w):.4f} |" for d, w in weights.items()]
    plots = [f for f in files if f.endswith(".png") and (f.startswith("doremi/") or f in TOP_LEVEL_DOREMI)]
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines)


# ---- continual pretraining: which stage of which run this folder is --------------------------------------------------


def continual_context(run_dir: Path) -> dict | None:
    """This folder's place in a ``curricula continual`` run, from the parent folder's ``continual.json`` (or
    ``union.json``): ``{"kind": "continual"|"union", "chain": [stage results up to this model], "this": ...,
    "doc": ...}``, or None. A stage folder holds only the model; the stages, replay shares and schedules are in the
    parent's record, matched by folder name (``<stage>`` or ``<last stage>-replay<percent>``, as continual.py names
    them)."""
    run_dir = Path(run_dir)
    doc = _read_json(run_dir.parent / "continual.json")
    if isinstance(doc, dict):
        stages = [s for s in doc.get("stages") or [] if isinstance(s, dict)]
        for i, s in enumerate(stages):
            if s.get("stage") == run_dir.name:
                return {"kind": "continual", "chain": stages[: i + 1], "this": s, "doc": doc}
        for v in doc.get("last_stage_variants") or []:
            if isinstance(v, dict) and f"{v.get('stage')}-replay{_percent(v.get('replay'))}" == run_dir.name:
                return {"kind": "continual", "chain": [*stages, v], "this": v, "doc": doc}
    union = _read_json(run_dir.parent / "union.json")
    if run_dir.name == "union" and isinstance(union, dict) and isinstance(union.get("union"), dict):
        return {"kind": "union", "chain": [union["union"]], "this": union["union"], "doc": union}
    return None


def _percent(x) -> int | None:
    try:
        return int(round(100 * float(x)))
    except (TypeError, ValueError):
        return None


def _pct(x) -> str:
    try:
        return f"{100 * float(x):g} %"
    except (TypeError, ValueError):
        return "—"


def _schedule_name(spec) -> str:
    if not isinstance(spec, dict):
        return "—"
    if spec.get("type") == "offset" and isinstance(spec.get("schedule"), dict):
        return f"{spec['schedule'].get('type', '?')} from global step {spec.get('offset', 0)}"
    return str(spec.get("type", "?"))


def _continual_section(ctx: dict, files: list[str]) -> str:
    doc, this = ctx["doc"], ctx["this"]
    recipe = doc.get("recipe") or {}
    seen_only = {s.get("name"): s.get("replay_seen_only", True) for s in recipe.get("stages") or []}
    data_names = [s.get("name") for s in recipe.get("stages") or [] if s.get("name")]
    lines = ["## Continual pretraining and replay", ""]
    if ctx["kind"] == "union":
        lines.append(f"The from-scratch reference of a continual run: one run on the union of all stages' data "
                     f"({this.get('steps', '?')} steps), {_pct(this.get('replay'))} of every batch from the earlier "
                     "stages' data, one schedule.")
    else:
        lines.append(f"This model is stage `{this.get('stage', '?')}` (stage {len(ctx['chain'])} of "
                     f"{len(recipe.get('stages') or ctx['chain'])}) of a continual run: each stage trains the previous "
                     f"stage's weights on new data (optimizer state: `{recipe.get('optimizer', '?')}`). Replay is "
                     "compute-equivalent: a fixed share of every global batch is drawn from earlier stages' blocks, "
                     "in place of new ones.")
    head = "| # | stage | steps | replay (share of each batch) | replay pool | LR schedule |"
    rule = "|---|---|---:|---:|---|---|"
    for name in data_names:
        head += f" loss after: `{name}` |"
        rule += "---:|"
    lines += ["", head, rule]
    for i, s in enumerate(ctx["chain"]):
        replay = s.get("replay") or 0
        # run_union draws from all earlier blocks (replay_seen_only=False); a stage follows its recipe entry
        seen = ctx["kind"] != "union" and seen_only.get(s.get("stage"), True)
        pool = "—" if replay == 0 else ("the earlier stages' blocks that were trained" if seen
                                       else "all of the earlier stages' blocks")
        row = (f"| {i + 1} | {s.get('stage', '?')} | {s.get('steps', '?')} | {_pct(replay)} | {pool} | "
               f"{_schedule_name(s.get('schedule'))} |")
        after = s.get("after") or {}
        row += "".join(f" {_fmt(after.get(f'eval_{n}_loss'))} |" for n in data_names)
        lines.append(row)
    if data_names:
        lines += ["", "Loss after: validation loss on each stage's data at the end of that stage."]
    others = [v for v in doc.get("last_stage_variants") or [] if v is not this and isinstance(v, dict)]
    if ctx["kind"] == "continual" and others:
        lines += ["", "Other variants of the last stage, from the same checkpoint: "
                  + ", ".join(f"replay {_pct(v.get('replay'))}" for v in others) + "."]
    if CONTINUAL_PLOT in files:
        lines += ["", f"![validation loss of every stage's data over the run]({CONTINUAL_PLOT})"]
    return "\n".join(lines)


# ---- learning-rate schedule ------------------------------------------------------------------------------------------


def lr_schedule_info(config: dict | None, continual: dict | None = None,
                     total_steps: int | None = None) -> dict | None:
    """The LR schedule a run used: ``{"name", "params", "schedule", "total_steps"}`` from ``training_config.json``
    (a curricula ``lr_schedule``, resolved with the run's ``learning_rate`` and length so defaults show as numbers,
    else Trainer's ``lr_scheduler_type``), or from a continual stage's record when the folder has no config.
    ``total_steps`` is the run's length when ``max_steps`` does not say it (a plan sets it at train time)."""
    config = dict(config or {})
    if not config.get("lr_schedule") and continual is not None and isinstance(continual["this"].get("schedule"), dict):
        recipe = continual["doc"].get("recipe") or {}
        config.update(lr_schedule=continual["this"]["schedule"], max_steps=continual["this"].get("steps"),
                      learning_rate=config.get("learning_rate", recipe.get("max_lr")))
    total = config.get("max_steps") if isinstance(config.get("max_steps"), int) and config["max_steps"] > 0 \
        else total_steps
    spec = config.get("lr_schedule")
    if isinstance(spec, str) and spec.strip():
        try:
            import yaml

            spec = yaml.safe_load(spec)
        except Exception:  # noqa: BLE001 - an unreadable spec is shown as text below
            return {"name": "custom", "params": {"lr_schedule": spec}, "schedule": None, "total_steps": total}
    if isinstance(spec, dict):
        from curricula.curriculum.schedules import ScheduleError, schedule_from_dict

        defaults: dict[str, Any] = {}
        if isinstance(config.get("learning_rate"), (int, float)):
            defaults["max_lr"] = float(config["learning_rate"])
        if total:
            defaults["total_steps"] = total
        try:
            schedule = schedule_from_dict(spec, defaults)
            params = schedule.to_dict()
        except (ScheduleError, TypeError, ValueError):
            schedule, params = None, dict(spec)
        name = _schedule_name(params)
        if params.get("type") == "offset" and isinstance(params.get("schedule"), dict):
            params = {**params["schedule"], "offset": params.get("offset", 0)}
        params = {k: v for k, v in params.items() if k != "type" and v is not None}
        return {"name": name, "params": params, "schedule": schedule, "total_steps": total,
                "source": "curricula `lr_schedule`"}
    name = config.get("lr_scheduler_type")
    if not name:
        return None
    params = {"learning_rate": config.get("learning_rate"), "warmup_steps": config.get("warmup_steps")}
    params.update(config.get("lr_scheduler_kwargs") or {})
    params["max_steps" if total else "num_train_epochs"] = total or config.get("num_train_epochs")
    return {"name": str(name), "params": {k: v for k, v in params.items() if v is not None}, "schedule": None,
            "total_steps": total, "source": "Trainer `lr_scheduler_type`"}


def _run_steps(run_dir: Path, points: list[tuple[int, float]]) -> int | None:
    """The run's optimizer steps when ``max_steps`` is unset: the plan's (``curriculum/run.json``), else the last
    logged step."""
    info = _read_json(Path(run_dir) / "curriculum" / "run.json")
    if isinstance(info, dict) and isinstance(info.get("total_steps"), int) and info["total_steps"] > 0:
        return info["total_steps"]
    return max((s for s, _ in points), default=None)


def logged_lrs(run_dir: Path, log_history: list[dict] | None = None) -> list[tuple[int, float]]:
    """(step, learning rate) pairs Trainer logged: from ``log_history`` if given, else ``trainer_state.json`` of the
    run folder or of its latest checkpoint (which stops at that checkpoint's step)."""
    if log_history is None:
        run_dir = Path(run_dir)
        candidates = [run_dir / "trainer_state.json"] + sorted(
            run_dir.glob("checkpoint-*/trainer_state.json"),
            key=lambda p: int(p.parent.name.split("-")[-1]) if p.parent.name.split("-")[-1].isdigit() else -1,
            reverse=True)
        for path in candidates:
            state = _read_json(path)
            if isinstance(state, dict) and state.get("log_history"):
                log_history = state["log_history"]
                break
    out = []
    for h in log_history or []:
        if isinstance(h, dict) and isinstance(h.get("learning_rate"), (int, float)) and isinstance(h.get("step"), int):
            out.append((h["step"], float(h["learning_rate"])))
    return out


def write_lr_plot(path: Path, points: list[tuple[int, float]], info: dict | None = None) -> Path | None:
    """Draw the LR curve: the logged LRs and, for a curricula schedule, its closed form over the run (as configured:
    an anneal requested at run time through ``OUTPUT_DIR/ANNEAL`` shows only in the logged values). None if there is
    nothing to draw. Written through a ``_``-prefixed temporary (Trainer's uploads ignore ``_*``) and ``os.replace``,
    so a concurrent upload never reads half a file and a hard-linked original is never written into."""
    schedule = (info or {}).get("schedule")
    total = (info or {}).get("total_steps") or (max(s for s, _ in points) if points else None)
    if len(points) < 2 and (schedule is None or not total):
        return None
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if schedule is not None and total:
        x = np.unique(np.linspace(0, total, min(total + 1, 2001)).astype(int))
        ax.plot(x, schedule.lrs(x), lw=1.5, label="schedule (closed form)")
    if points:
        ax.plot([s for s, _ in points], [v for _, v in points], ".", ms=3, label="logged by Trainer")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"learning rate: {(info or {}).get('name', 'logged')}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"_{path.name}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _lr_section(info: dict | None, files: list[str], points: list[tuple[int, float]]) -> str:
    lines = ["## Learning-rate schedule", ""]
    if info is not None:
        lines.append(f"`{info['name']}` ({info.get('source', '')}).")
        if info["params"]:
            lines += ["", "| parameter | value |", "|---|---|"]
            lines += [f"| `{k}` | `{json.dumps(v) if isinstance(v, (dict, list)) else v}` |"
                      for k, v in info["params"].items()]
    if points:
        lines += ["", f"Logged: {len(points)} values from step {points[0][0]} ({points[0][1]:.3g}) to step "
                  f"{points[-1][0]} ({points[-1][1]:.3g})."]
    if LR_PLOT in files:
        lines += ["", f"![learning rate over the run]({LR_PLOT})"]
    return "\n".join(lines)


def prepare_extras(run_dir: Path, dest: Path, log_history: list[dict] | None = None) -> list[str]:
    """Write the card's derived files into ``dest`` (the staging folder, or Trainer's ``output_dir``): the LR plot,
    and a continual stage's loss-curve plot copied from the parent folder. Returns their paths in the repo."""
    run_dir, dest = Path(run_dir), Path(dest)
    out = []
    ctx = continual_context(run_dir)
    if ctx is not None and ctx["kind"] == "continual" and (run_dir.parent / "continual.png").is_file():
        target = dest / CONTINUAL_PLOT
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() != (run_dir.parent / "continual.png").resolve():
            shutil.copyfile(run_dir.parent / "continual.png", target)
        out.append(CONTINUAL_PLOT)
    points = logged_lrs(run_dir, log_history)
    info = lr_schedule_info(_read_json(run_dir / "training_config.json"), ctx, _run_steps(run_dir, points))
    if write_lr_plot(dest / LR_PLOT, points, info) is not None:
        out.append(LR_PLOT)
    return out


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
    skip = {"lr_scheduler_type"} if config.get("lr_schedule") else set()  # replaced by the curricula schedule
    rows = [f"| `{k}` | `{json.dumps(config[k]) if isinstance(config[k], (dict, list)) else config[k]}` |"
            for k in CONFIG_KEYS if k in config and config[k] not in (None, "", -1) and k not in skip]
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


def render_card(run_dir: Path, repo_id: str, files: list[str], license: str = "apache-2.0",  # noqa: A002
                log_history: list[dict] | None = None) -> str:
    """The model card (README.md) for ``run_dir``: YAML front matter + a summary of the run. ``files`` are the repo
    paths being uploaded (plots are linked only if they are among them); ``log_history`` is Trainer's, when the card
    is written by a live trainer (else the logged LRs come from ``trainer_state.json``)."""
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
    ctx = continual_context(run_dir)
    if ctx is not None:
        sections.append(_continual_section(ctx, files))
    points = logged_lrs(run_dir, log_history)
    lr_info = lr_schedule_info(config if isinstance(config, dict) else None, ctx, _run_steps(run_dir, points))
    if lr_info is not None or points or LR_PLOT in files:
        sections.append(_lr_section(lr_info, files, points))
    weights = _read_json(run_dir / "doremi" / "domain_weights.json") or _read_json(run_dir / "domain_weights.json")
    if weights is None and run_dir.name == "main":  # `curricula doremi`'s final run: the weights are its parent's
        weights = _read_json(run_dir.parent / "domain_weights.json")
    if isinstance(weights, dict) and weights.get("weights"):
        sections.append(_doremi_section(weights, files))
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
        files = sorted(set(files) | set(prepare_extras(run_dir, stage)))
        (stage / "README.md").write_text(render_card(run_dir, repo_id, files, license=license))
        url = api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
        target = getattr(url, "repo_id", None) or repo_id
        with warnings.catch_warnings():  # the Parquet / Arrow logs are meant for the model repo
            warnings.filterwarnings("ignore", message=".*commit a data file.*", category=UserWarning)
            info = api.upload_folder(folder_path=stage, repo_id=target, repo_type="model", revision=revision,
                                     commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
