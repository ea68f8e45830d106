"""The model card (README.md) of a run folder, rendered purely from the folder and from what a live Trainer knows.

``render_card(run_dir, repo_id, files, ...)`` reads, all optional:

    run.json                      the run record: method, run id, seed, domains, lineage (``curricula-run/1``)
    training_config.json          the TrainingArguments (hub tokens masked)
    curriculum/plan.json          the LFR plan sized in steps: its epochs
    eval_results.json             ``curricula eval`` zero-shot results
    trainer_state.json            Trainer's log history (top level, else the newest checkpoint's), when no live
                                  ``log_history`` is given: the evaluation table and the logged learning rates
    doremi/domain_weights.json    DoReMi weights (``curricula doremi``'s final run: the parent folder's)
    analysis/summary.json         ``curricula analyze``
    ../continual.json             the continual run this folder is a stage of (../union.json: its union reference)

and what the caller knows besides (``hf_trainer_ext.hub.write_trainer_card`` passes a live trainer's): the keywords
``Trainer.create_model_card`` receives (language, license, tags, model_name, finetuned_from, tasks, dataset_tags,
dataset, dataset_args), the plan's number of epochs, the loss-token note and the framework versions.

Like Trainer's card (``transformers.modelcard.TrainingSummary``), the front matter has ``language``, ``license``,
``base_model``, ``tags``, ``datasets``, ``metrics`` and a ``model-index`` whose results pair every task with every
dataset tag and carry the final evaluation's metrics that the Hub knows (accuracy, f1, ...); the text has the final
evaluation results and the table of every evaluation during training (``parse_log_history``). Unlike it, the number
of epochs is the curriculum plan's, never ``num_train_epochs`` when a plan sized the run.

No local path reaches the card: lineage folders and paths in the method's configuration are shown by name only.
Pure: yaml, numpy and matplotlib's Agg canvas (the LR plot); no torch, transformers or huggingface_hub.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from curricula.errors import CorruptFileError
from curricula.report.files import CONTINUAL_PLOT, LR_PLOT, TOKENIZER_FILES, TOP_LEVEL_DOREMI
from curricula.report.plots import figure, save_figure
from curricula.run_layout import RunDir, atomic_write, read_json

__all__ = ["render_card", "card_front_matter", "prepare_extras", "continual_context", "lr_schedule_info",
           "logged_lrs", "log_history_of", "write_lr_plot", "parse_log_history", "run_record", "run_method",
           "CARD_KEYWORDS", "CARD_TEMPLATE", "CONFIG_KEYS"]

CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "run_card.md"  # ships in the wheel (package data)
#: the keyword arguments of ``Trainer.create_model_card`` (``dataset_metadata``: ``TrainingSummary``'s)
CARD_KEYWORDS = ("language", "license", "tags", "model_name", "finetuned_from", "tasks", "dataset_tags", "dataset",
                 "dataset_args", "dataset_metadata")

# transformers.modelcard: the task names and the metric tags the Hub knows (a model-index metric must have one)
TASK_TAG_TO_NAME = {
    "fill-mask": "Masked Language Modeling", "image-classification": "Image Classification",
    "image-segmentation": "Image Segmentation", "multiple-choice": "Multiple Choice",
    "object-detection": "Object Detection", "question-answering": "Question Answering",
    "table-question-answering": "Table Question Answering", "text-classification": "Text Classification",
    "text-generation": "Causal Language Modeling", "token-classification": "Token Classification",
    "zero-shot-classification": "Zero Shot Classification",
    "automatic-speech-recognition": "Automatic Speech Recognition", "audio-classification": "Audio Classification",
}
METRIC_TAGS = ("accuracy", "bleu", "f1", "matthews_correlation", "pearsonr", "precision", "recall", "rouge",
               "sacrebleu", "spearmanr", "wer")


# ---- reading the folder ---------------------------------------------------------------------------------------------


def _read_json(path: Path):
    """A JSON file, or None when it is missing or unreadable: a damaged record costs its section, not the card."""
    try:
        return read_json(path)
    except (OSError, CorruptFileError):
        return None


def _tag(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "run"


def _listify(x) -> list:
    if x is None:
        return []
    if isinstance(x, (str, Mapping)):
        return [x]
    return [v for v in x if v is not None]


def run_record(run_dir) -> dict | None:
    """``OUTPUT_DIR/run.json`` (``curricula-run/1``), or None when the folder has none (older runs) or it is damaged."""
    try:
        record = RunDir(run_dir).read_run()
    except (OSError, CorruptFileError):
        return None
    return record if isinstance(record, dict) else None


def _guess_method(run_dir: Path) -> str:
    """For run folders from before ``run.json``: the plan's name, else which files exist."""
    info = _read_json(RunDir(run_dir).plan_file())
    name = ((info.get("plan") if isinstance(info, dict) else None) or {}).get("name")
    if name:
        return _tag(name)
    if continual_context(run_dir) is not None:
        return "continual"
    if (run_dir / "doremi" / "domain_weights.json").is_file() or (run_dir / "domain_weights.json").is_file() or (
            run_dir.name == "main" and (run_dir.parent / "domain_weights.json").is_file()):
        return "doremi"
    return "pretraining"


def run_method(run_dir, record: dict | None = None) -> str:
    """The run's method as its record says (``run.json`` ``method``), else guessed for older run folders."""
    run_dir = Path(run_dir)
    record = run_record(run_dir) if record is None else record
    method = (record or {}).get("method")
    if isinstance(method, str) and method.strip():
        return method.strip()
    return _guess_method(run_dir)


def _method_tags(method: str, record: dict | None, ctx: dict | None, doremi_weights: bool) -> list[str]:
    tags = [] if method in ("none", "curricula") else [_tag(method)]
    roles = {str(item.get("role")) for item in (record or {}).get("lineage") or [] if isinstance(item, dict)}
    if (ctx is not None or "previous_stage" in roles) and "continual" not in tags:
        tags.append("continual")
    if record is not None and (doremi_weights or "proxy" in roles) and not any(t.startswith("doremi") for t in tags):
        tags.append("doremi")
    return tags


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else ("—" if x is None else str(x))


def _drop(x) -> str:
    return "—" if x is None else f"{float(x):g}"


def _cell(v) -> str:
    return f"`{json.dumps(v) if isinstance(v, (dict, list)) else v}`"


def _looks_like_path(s: str) -> bool:
    return s.startswith(("/", "~", "./", "../")) or bool(re.match(r"^[A-Za-z]:[\\/]", s))


def _no_paths(x):
    """A copy with every local path reduced to its last part (``/home/me/data/en`` -> ``…/en``)."""
    if isinstance(x, Mapping):
        return {k: _no_paths(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_paths(v) for v in x]
    if isinstance(x, str) and _looks_like_path(x):
        return "…/" + (Path(x.rstrip("/\\")).name or "")
    return x


# ---- sections -------------------------------------------------------------------------------------------------------


def _run_section(record: dict, method: str) -> str:
    rows = [("run id", record.get("run_id")), ("method", method), ("seed", record.get("seed")),
            ("created", record.get("created"))]
    lines = ["## Run", "", "| | |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in rows if v not in (None, "")]
    if record.get("domain_names"):
        lines.append("| domains | " + ", ".join(f"`{d}`" for d in record["domain_names"]) + " |")
    lineage = [item for item in record.get("lineage") or [] if isinstance(item, dict)]
    if lineage:
        lines += ["", "Lineage: the runs this one builds on.", "", "| role | run id | folder |", "|---|---|---|"]
        for item in lineage:
            folder = Path(str(item.get("path") or "")).name or "—"
            lines.append(f"| {item.get('role', '?')} | {_cell(item['run_id']) if item.get('run_id') else '—'} | "
                         f"`{folder}` |")
    else:
        lines += ["", "Lineage: none (trained from its initial weights, on its own data)."]
    config = record.get("curriculum")
    if isinstance(config, Mapping) and config:
        lines += ["", "The method's configuration (`run.json`):", "", "```json",
                  json.dumps(_no_paths(config), indent=2, default=str, ensure_ascii=False), "```"]
    return "\n".join(lines)


def _plan_section(info: dict) -> str:
    plan = info.get("plan") or {}
    lines = ["## Curriculum", "", f"Plan `{plan.get('name', '?')}`"
             + (f" ({json.dumps(plan['params'])})" if plan.get("params") else "")
             + f"; seed {info.get('seed', '?')}, global batch {info.get('global_batch', '?')}, "
             f"{info.get('n_blocks', '?')} blocks, {len(info.get('epochs') or [])} epochs, "
             f"{info.get('total_steps', '?')} optimizer steps."]
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


def continual_context(run_dir) -> dict | None:
    """This folder's place in a ``curricula continual`` run, from the parent folder's ``continual.json`` (or
    ``union.json``): ``{"kind": "continual"|"union", "chain": [stage results up to this model], "this": ...,
    "doc": ...}``, or None. A stage folder holds only the model; the stages, replay shares and schedules are in the
    parent's record, matched by folder name (``<stage>`` or ``<last stage>-replay<percent>``, as the continual
    pipeline names them)."""
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
        from curricula.optim.schedules import ScheduleError, schedule_from_dict

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


def _plan_info(run_dir: Path) -> dict | None:
    info = _read_json(RunDir(run_dir).plan_file())
    return info if isinstance(info, dict) else None


def _run_steps(run_dir: Path, points: list[tuple[int, float]]) -> int | None:
    """The run's optimizer steps when ``max_steps`` is unset: the plan's (``curriculum/plan.json``), else the last
    logged step."""
    info = _plan_info(Path(run_dir)) or {}
    if isinstance(info.get("total_steps"), int) and info["total_steps"] > 0:
        return info["total_steps"]
    return max((s for s, _ in points), default=None)


def _checkpoint_step(path: Path) -> int:
    tail = path.parent.name.split("-")[-1]
    return int(tail) if tail.isdigit() else -1


def log_history_of(run_dir, log_history: list[dict] | None = None) -> tuple[list[dict], str | None]:
    """Trainer's log history and where it came from: ``log_history`` if given (a live trainer's), else
    ``trainer_state.json`` of the run folder or of its newest checkpoint (which stops at that checkpoint's step)."""
    if log_history is not None:
        return [h for h in log_history if isinstance(h, dict)], "trainer"
    run_dir = Path(run_dir)
    candidates = [run_dir / "trainer_state.json"] + sorted(run_dir.glob("checkpoint-*/trainer_state.json"),
                                                           key=_checkpoint_step, reverse=True)
    for path in candidates:
        state = _read_json(path)
        if isinstance(state, dict) and state.get("log_history"):
            return [h for h in state["log_history"] if isinstance(h, dict)], path.relative_to(run_dir).as_posix()
    return [], None


def logged_lrs(run_dir, log_history: list[dict] | None = None) -> list[tuple[int, float]]:
    """(step, learning rate) pairs Trainer logged (see ``log_history_of``)."""
    history, _ = log_history_of(run_dir, log_history)
    return [(h["step"], float(h["learning_rate"])) for h in history
            if isinstance(h.get("learning_rate"), (int, float)) and isinstance(h.get("step"), int)]


def write_lr_plot(path, points: list[tuple[int, float]], info: dict | None = None) -> Path | None:
    """Draw the LR curve: the logged LRs and, for a curricula schedule, its closed form over the run (as configured:
    an anneal requested at run time through ``OUTPUT_DIR/ANNEAL`` shows only in the logged values). None if there is
    nothing to draw. Written atomically (``curricula.report.plots.save_figure``): a concurrent upload never reads
    half a file and a hard-linked original is never written into."""
    schedule = (info or {}).get("schedule")
    total = (info or {}).get("total_steps") or (max(s for s, _ in points) if points else None)
    if len(points) < 2 and (schedule is None or not total):
        return None
    import numpy as np

    fig = figure(7, 3.2)
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
    return save_figure(fig, path)


def _lr_section(info: dict | None, files: list[str], points: list[tuple[int, float]]) -> str:
    lines = ["## Learning-rate schedule", ""]
    if info is not None:
        lines.append(f"`{info['name']}` ({info.get('source', '')}).")
        if info["params"]:
            lines += ["", "| parameter | value |", "|---|---|"]
            lines += [f"| `{k}` | {_cell(v)} |" for k, v in info["params"].items()]
    if points:
        lines += ["", f"Logged: {len(points)} values from step {points[0][0]} ({points[0][1]:.3g}) to step "
                  f"{points[-1][0]} ({points[-1][1]:.3g})."]
    if LR_PLOT in files:
        lines += ["", f"![learning rate over the run]({LR_PLOT})"]
    return "\n".join(lines)


def prepare_extras(run_dir, dest, log_history: list[dict] | None = None) -> list[str]:
    """Write the card's derived files into ``dest`` (the staging folder, or Trainer's ``output_dir``): the LR plot,
    and a continual stage's loss-curve plot copied from the parent folder. Returns their paths in the repo. Every
    file is replaced atomically (a checkpoint push may be reading ``dest``)."""
    run_dir, dest = Path(run_dir), Path(dest)
    out = []
    ctx = continual_context(run_dir)
    source = run_dir.parent / "continual.png"
    if ctx is not None and ctx["kind"] == "continual" and source.is_file():
        target = dest / CONTINUAL_PLOT
        if not target.exists() or target.resolve() != source.resolve():
            atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
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


# ---- training configuration ------------------------------------------------------------------------------------------

CONFIG_KEYS = ("curriculum", "curriculum_params", "domain_weights", "lr_schedule", "learning_rate", "lr_scheduler_type",
               "warmup_steps", "weight_decay", "optim", "per_device_train_batch_size", "per_device_eval_batch_size",
               "gradient_accumulation_steps", "max_steps", "num_train_epochs", "seed", "bf16", "fp16",
               "label_smoothing_factor")


def _config_section(config: dict, plan_epochs: int | None, extra: Mapping[str, Any] | None,
                    loss_type_note: str | None) -> str:
    skip = {"lr_scheduler_type"} if config.get("lr_schedule") else set()  # replaced by the curricula schedule
    if plan_epochs is not None or (isinstance(config.get("max_steps"), int) and config["max_steps"] > 0):
        skip.add("num_train_epochs")  # a plan or max_steps sized the run: Trainer's num_train_epochs did not apply
    if not config.get("label_smoothing_factor"):
        skip.add("label_smoothing_factor")
    rows = [f"| `{k}` | {_cell(_no_paths(config[k]))} |"
            for k in CONFIG_KEYS if k in config and config[k] not in (None, "", -1) and k not in skip]
    if plan_epochs is not None:
        rows.append(f"| epochs (the curriculum plan's) | `{plan_epochs}` |")
    rows += [f"| {k} | {_cell(v)} |" for k, v in (extra or {}).items() if v is not None]
    lines = ["## Training configuration", "", "| argument | value |", "|---|---|", *rows]
    if plan_epochs is not None:
        lines += ["", f"The curriculum plan sized the run: {plan_epochs} epochs (one Trainer epoch each) and "
                  "`max_steps` its real step count; `num_train_epochs` was not used."]
    if loss_type_note:
        lines += ["", f"Loss: {loss_type_note}."]
    return "\n".join(lines)


def _plan_epochs(plan_epochs, info: dict | None) -> int | None:
    if isinstance(plan_epochs, Sequence) and not isinstance(plan_epochs, str):
        return len(plan_epochs)
    if isinstance(plan_epochs, (int, float)) and not isinstance(plan_epochs, bool) and plan_epochs > 0:
        return int(plan_epochs)
    epochs = (info or {}).get("epochs")
    return len(epochs) if isinstance(epochs, list) and epochs else None


# ---- evaluation results (Trainer's log history) ---------------------------------------------------------------------

_EVAL_SKIP = ("runtime", "samples_per_second", "steps_per_second", "epoch", "step")


def _title(key: str) -> str:
    return " ".join(part.capitalize() for part in key.split("_"))


def parse_log_history(log_history: list[dict]) -> tuple[dict | None, list[dict], dict | None]:
    """``(train summary, evaluation lines, final evaluation)`` from Trainer's ``log_history``, as
    ``transformers.modelcard.parse_log_history`` builds the card's table: one line per evaluation during training
    (``Training Loss`` = the last logged training loss before it, ``Epoch``, ``Step``, ``Validation Loss``, and every
    other metric as ``Title Case``; runtimes and throughputs dropped) and the last evaluation's metrics. Unlike it,
    a history without the end-of-training summary (a checkpoint's) still gives its lines, and an evaluation logged
    first still counts as the final one."""
    history = [h for h in log_history or [] if isinstance(h, dict)]
    end = next((i for i, h in enumerate(history) if "train_runtime" in h), None)
    lines, training_loss = [], "No log"
    for h in history[: end if end is not None else len(history)]:
        if "loss" in h:
            training_loss = h["loss"]
        if "eval_loss" in h:
            values = {"Training Loss": training_loss, "Epoch": h.get("epoch"), "Step": h.get("step")}
            for k, v in h.items():
                if k in ("epoch", "step", "total_flos", "eval_runtime", "eval_samples_per_second",
                         "eval_steps_per_second"):
                    continue
                values["Validation Loss" if k == "eval_loss" else _title(k.split("_", 1)[-1])] = v
            lines.append(values)
    last = next((h for h in reversed(history) if "eval_loss" in h), None)
    final = None
    if last is not None:
        final = {_title(k.removeprefix("eval_")): v for k, v in last.items() if k.removeprefix("eval_") not in _EVAL_SKIP}
    return (history[end] if end is not None else None), lines, final


def _round(v, decimals: int = 4) -> str:
    if isinstance(v, float) and len(str(v).split(".")) > 1 and len(str(v).split(".")[1]) > decimals:
        return f"{v:.{decimals}f}"
    return "—" if v is None else str(v)


def _markdown_table(lines: list[dict]) -> str:
    cols = list(dict.fromkeys(k for line in lines for k in line))
    out = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    out += ["| " + " | ".join(_round(line.get(c)) for c in cols) + " |" for line in lines]
    return "\n".join(out)


def _final_results_text(final: dict, source: str | None) -> str:
    where = "" if source in (None, "trainer") else f" (the last one logged in `{source}`)"
    return (f"It achieves the following results on the evaluation set{where}:\n"
            + "\n".join(f"- {name}: {_round(v)}" for name, v in final.items()))


def _eval_section(lines: list[dict], source: str | None) -> str:
    where = "Trainer's log history" if source in (None, "trainer") else f"the log history in `{source}`"
    return ("## Training results\n\nEvery evaluation during training (" + where + "); Training Loss is the last "
            "training loss logged before it.\n\n" + _markdown_table(lines))


# ---- front matter ---------------------------------------------------------------------------------------------------


def _zero_shot(evals: dict | None, final_log: dict | None) -> dict[str, dict]:
    """``{task: {"accuracy", "accuracy_norm"?, ...}}``: ``curricula eval`` results (eval_results.json), else the
    task scores the trainer logged at its last evaluation (``eval_task/<name>/accuracy``)."""
    tasks = (evals or {}).get("tasks")
    out = {str(name): dict(r) for name, r in (tasks if isinstance(tasks, dict) else {}).items() if isinstance(r, dict)}
    given = set(out)
    for key, value in (final_log or {}).items():
        m = re.fullmatch(r"eval_task/(.+)/(accuracy|accuracy_norm)", str(key))
        if m and m.group(1) not in given and isinstance(value, (int, float)):
            out.setdefault(m.group(1), {"kind": "logged by the trainer"})[m.group(2)] = float(value)
    return out


def _model_index_results(kw: Mapping[str, Any], final: dict | None, zero_shot: dict[str, dict],
                         domain_log: dict | None = None) -> list[dict]:
    results = []
    # as TrainingSummary.create_model_index: every (task, dataset tag) pair, with the final evaluation's Hub metrics
    metric_mapping = {}
    for key in final or {}:
        tag = key.lower().replace(" ", "_")
        if tag in METRIC_TAGS:
            metric_mapping[tag] = key
        elif key.lower() == "rouge1":
            metric_mapping["rouge"] = key
    tasks = {t: TASK_TAG_TO_NAME[t] for t in _listify(kw.get("tasks")) if t in TASK_TAG_TO_NAME}
    tags = _listify(kw.get("dataset_tags"))
    names = _listify(kw.get("dataset")) or tags
    args = _listify(kw.get("dataset_args"))
    metadata = _listify(kw.get("dataset_metadata"))
    if metric_mapping and tasks and tags:
        for task_tag, task_name in tasks.items():
            for i, ds_tag in enumerate(tags):
                dataset = {"name": names[i] if i < len(names) else ds_tag, "type": ds_tag,
                           **(metadata[i] if i < len(metadata) and isinstance(metadata[i], Mapping) else {})}
                if i < len(args) and args[i] is not None:
                    dataset["args"] = args[i]
                results.append({"task": {"name": task_name, "type": task_tag}, "dataset": dataset,
                                "metrics": [{"name": name, "type": tag, "value": final[name]}
                                            for tag, name in metric_mapping.items()]})
    domain_log = domain_log or {}
    domains = {k[len("eval_ppl/"):]: v for k, v in domain_log.items()
               if k.startswith("eval_ppl/") and isinstance(v, (int, float))}
    if domains:  # the held-out perplexity of every domain, its average and its worst (the trainer's evaluation)
        summary = [(f"perplexity, {label}", domain_log.get(key)) for label, key in
                   (("average over domains", "eval_ppl_avg"), ("worst domain", "eval_ppl_worst"))]
        metrics = [{"name": name, "type": "perplexity", "value": float(v)} for name, v in summary
                   if isinstance(v, (int, float))]
        metrics += [{"name": f"perplexity, {d}", "type": "perplexity", "value": float(v)} for d, v in domains.items()]
        names = _listify(kw.get("dataset")) or _listify(kw.get("dataset_tags"))
        results.append({"task": {"name": "Causal Language Modeling", "type": "text-generation"},
                        "dataset": {"name": f"{names[0] if names else 'training data'}, held-out blocks per domain",
                                    "type": "curricula/per-domain-validation"},
                        "metrics": metrics})
    for name, r in zero_shot.items():  # curricula's zero-shot tasks, scored by log-likelihood
        metrics = [{"type": m, "value": float(r[m])} for m in ("accuracy", "accuracy_norm")
                   if isinstance(r.get(m), (int, float))]
        if metrics:
            results.append({"task": {"type": "text-generation"},
                            "dataset": {"name": name, "type": f"curricula/{name}"}, "metrics": metrics})
    return results


def card_front_matter(kw: Mapping[str, Any], tags: list[str], final: dict | None, zero_shot: dict[str, dict],
                      model_name: str, domain_log: dict | None = None) -> dict:
    """The YAML front matter as a dict, in Trainer's order (``TrainingSummary.create_metadata``)."""
    meta: dict[str, Any] = {"library_name": "transformers"}
    if _listify(kw.get("language")):
        meta["language"] = _listify(kw.get("language"))
    if kw.get("license"):
        meta["license"] = kw["license"]
    if isinstance(kw.get("finetuned_from"), str) and kw["finetuned_from"]:
        meta["base_model"] = kw["finetuned_from"]
    meta["tags"] = list(dict.fromkeys(tags))
    if _listify(kw.get("dataset_tags")):
        meta["datasets"] = _listify(kw.get("dataset_tags"))
    results = _model_index_results(kw, final, zero_shot, domain_log)
    metrics = list(dict.fromkeys(m["type"] for r in results for m in r["metrics"]))
    if metrics:
        meta["metrics"] = metrics
    meta["pipeline_tag"] = "text-generation"
    meta["model-index"] = [{"name": model_name, "results": results}]  # always, as Trainer's card has it
    return meta


def _summary_text(kw: Mapping[str, Any], final: dict | None, source: str | None) -> str:
    base = kw.get("finetuned_from")
    text = (f"This model is a fine-tuned version of [{base}](https://huggingface.co/{base}) on " if base
            else "This model was trained from scratch on ")
    datasets = [str(d) for d in _listify(kw.get("dataset")) or _listify(kw.get("dataset_tags"))]
    args = [a for a in _listify(kw.get("dataset_args")) if a is not None]
    if not datasets:
        text += "an unknown dataset."
    elif len(datasets) == 1:
        text += f"the {datasets[0]} dataset" + (f" (`{args[0]}`)" if args else "") + "."
    else:
        text += ", ".join(f"the {d}" for d in datasets[:-1]) + f" and the {datasets[-1]} datasets" + (
            " (" + ", ".join(f"`{a}`" for a in args) + ")" if args else "") + "."
    tasks = _listify(kw.get("tasks"))
    if tasks:
        text += " Task" + ("s" if len(tasks) > 1 else "") + ": " + ", ".join(f"`{t}`" for t in tasks) + "."
    langs = _listify(kw.get("language"))
    if langs:
        text += " Language" + ("s" if len(langs) > 1 else "") + ": " + ", ".join(f"`{x}`" for x in langs) + "."
    if final:
        text += "\n\n" + _final_results_text(final, source)
    return text


# ---- the card -------------------------------------------------------------------------------------------------------


def render_card(run_dir, repo_id: str, files: list[str], license: str | None = "apache-2.0",  # noqa: A002
                log_history: list[dict] | None = None, *, keywords: Mapping[str, Any] | None = None,
                plan_epochs: int | Sequence | None = None, loss_type_note: str | None = None,
                config: dict | None = None, hyperparameters: Mapping[str, Any] | None = None,
                framework_versions: Mapping[str, str] | None = None) -> str:
    """The model card (README.md) for ``run_dir``: YAML front matter + a summary of the run.

    ``files``: the repo paths being uploaded (plots are linked only if they are among them). ``log_history``:
    Trainer's, when a live trainer writes the card (else ``trainer_state.json``'s). ``keywords``: what
    ``Trainer.create_model_card`` received (``CARD_KEYWORDS``; ``license`` there wins over the argument).
    ``plan_epochs``: the curriculum's epochs (a count or the list), else the plan's (``curriculum/plan.json``).
    ``loss_type_note``: how the trainer set the model's loss (else the run record's ``loss_type_note``).
    ``config``: the training arguments (else ``training_config.json``); ``hyperparameters``: more rows for the
    training configuration (e.g. the total batch); ``framework_versions``: ``{package: version}``."""
    run_dir = Path(run_dir)
    kw = {k: v for k, v in dict(keywords or {}).items() if k in CARD_KEYWORDS and v is not None}
    kw.setdefault("license", license)
    record = run_record(run_dir)
    method = run_method(run_dir, record)
    ctx = continual_context(run_dir)
    weights = _read_json(run_dir / "doremi" / "domain_weights.json") or _read_json(run_dir / "domain_weights.json")
    if weights is None and run_dir.name == "main":  # `curricula doremi`'s final run: the weights are its parent's
        weights = _read_json(run_dir.parent / "domain_weights.json")
    has_weights = isinstance(weights, dict) and bool(weights.get("weights"))
    tags = ["curricula", *_method_tags(method, record, ctx, has_weights), *map(str, _listify(kw.get("tags")))]

    history, source = log_history_of(run_dir, log_history)
    _, eval_lines, final = parse_log_history(history)
    final_log = next((h for h in reversed(history) if "eval_loss" in h), None)
    evals = _read_json(run_dir / "eval_results.json")
    evals = evals if isinstance(evals, dict) else None
    zero_shot = _zero_shot(evals, final_log)
    repo_name = repo_id.split("/")[-1]
    model_name = str(kw.get("model_name") or repo_name)
    domain_log = next((h for h in reversed(history) if "eval_ppl_avg" in h), None)  # per-domain perplexity
    front = card_front_matter(kw, tags, final, zero_shot, model_name, domain_log)

    import yaml

    info = _plan_info(run_dir)
    config = config if isinstance(config, dict) else _read_json(run_dir / "training_config.json")
    loss_type_note = loss_type_note or (record or {}).get("loss_type_note")
    sections = []
    if record is not None:
        sections.append(_run_section(record, method))
    if isinstance(config, dict):
        sections.append(_config_section(config, _plan_epochs(plan_epochs, info), hyperparameters, loss_type_note))
    elif loss_type_note:
        sections.append(f"## Training configuration\n\nLoss: {loss_type_note}.")
    if eval_lines:
        sections.append(_eval_section(eval_lines, source))
    if zero_shot:
        sections.append(_results_section(zero_shot))
    if info is not None:
        sections.append(_plan_section(info))
    if ctx is not None:
        sections.append(_continual_section(ctx, files))
    points = logged_lrs(run_dir, history)
    lr_info = lr_schedule_info(config if isinstance(config, dict) else None, ctx, _run_steps(run_dir, points))
    if lr_info is not None or points or LR_PLOT in files:
        sections.append(_lr_section(lr_info, files, points))
    if has_weights:
        sections.append(_doremi_section(weights, files))
    summary = _read_json(run_dir / "analysis" / "summary.json")
    if isinstance(summary, dict) or any(f.startswith("analysis/") for f in files):
        sections.append(_analysis_section(summary if isinstance(summary, dict) else {}, files))
    if framework_versions:
        sections.append("## Framework versions\n\n" + "\n".join(f"- {k} {v}" for k, v in framework_versions.items()))
    has_tok = any(f in TOKENIZER_FILES for f in files)
    template = CARD_TEMPLATE.read_text()
    values = {
        "front_matter": yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(),
        "repo_id": repo_id,
        "repo_name": model_name,
        "method": method,
        "summary": _summary_text(kw, final, source),
        "tokenizer_line": f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")' if has_tok
        else "# no tokenizer files were uploaded with this run",
        "sections": "\n\n".join(sections) if sections else "No curriculum log was found in the run folder.",
        "files": "\n".join(f"- `{f}`" for f in files),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _results_section(zero_shot: dict[str, dict]) -> str:
    rows = [f"| {name} | {r.get('kind', '')} | {r.get('n', '')} | {_fmt(r.get('accuracy'))} | "
            f"{_fmt(r['accuracy_norm']) if 'accuracy_norm' in r else ''} |" for name, r in zero_shot.items()]
    return ("## Zero-shot results\n\nScored by log-likelihood with `curricula eval` on held-out tasks.\n\n"
            "| task | kind | n | accuracy | accuracy (length-normalised) |\n|---|---|---:|---:|---:|\n" + "\n".join(rows))
