"""Continual pretraining in stages D0 → D1 → …, with LR re-warm/re-decay or an infinite schedule, and replay.

Each stage is a ``CurriculumTrainer`` run on the previous stage's weights (and, with ``optimizer: keep``, its AdamW
state). A stage's batches are drawn by a ``MixtureSampler`` over two pools: the stage's own blocks and the replay
pool, in proportions (1 - x, x): compute-equivalent replay (replayed blocks take slots of new ones; the batch size
stays), exact counts per batch with rounding carried across batches, the identical stream on every rank. The replay
pool is every earlier stage's blocks (``replay_seen_only: false``) or exactly those an earlier stage trained on,
recomputed from its deterministic mixer stream (``true``, the gpt-neox PR's behaviour). Throughout, every stage's
validation data is evaluated (``eval_<stage>_loss``), so forgetting and adaptation show as curves.

Recipe (``curricula/recipes/continual_replay.yaml``) → ``run_continual``; variants of the last stage (e.g. replay
0 %, 5 %, 25 %) branch from the same checkpoint of the stage before, so they differ only in that stage.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from curricula.errors import CurriculaError
from hf_trainer_ext.trainer import CurriculumTrainer


class ContinualError(CurriculaError):
    """A continual recipe that cannot run; the message says how to fix it."""


@dataclass
class Stage:
    name: str
    packed: str
    steps: int
    schedule: dict | None = None  # a curricula schedule; default: warmup + cosine to 0.1 x max over the stage
    replay: float = 0.0  # share of every global batch drawn from the earlier stages' data
    replay_seen_only: bool = True

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ContinualError(f"stage {self.name!r} has steps={self.steps!r}; every stage needs a positive number of steps")
        if not 0.0 <= float(self.replay) < 1.0:
            raise ContinualError(
                f"stage {self.name!r} has replay={self.replay}; the replayed share of a batch must be in [0, 1) "
                "(0.05 = 5 %), since a batch made only of old data would train nothing new"
            )


@dataclass
class ContinualRecipe:
    stages: list[Stage]
    model: dict = field(default_factory=lambda: {"n_layer": 2, "n_embd": 128, "n_head": 4})
    model_name_or_path: str | None = None
    optimizer: str = "keep"  # keep | reset (AdamW moments carried into the next stage, or started anew)
    max_lr: float = 2e-3
    infinite: dict | None = None  # one Infinite schedule over all stages instead of per-stage re-warm/re-decay
    eval_every: int = 50
    max_eval_blocks: int = 256
    variants: dict = field(default_factory=dict)  # {"replay": [0.0, 0.05, 0.25]}: variants of the last stage
    training: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "ContinualRecipe":
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        data.pop("method", None)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "ContinualRecipe":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ContinualError(f"unknown recipe key(s) {unknown}; valid: {[f.name for f in fields(cls)]}")
        stages = data.get("stages") or []
        if not stages:
            raise ContinualError("the recipe has no stages; list them under stages: with name, packed and steps")
        data = {**data, "stages": [s if isinstance(s, Stage) else Stage(**s) for s in stages]}
        if data.get("optimizer", "keep") not in ("keep", "reset"):
            raise ContinualError(f"optimizer={data['optimizer']!r}: use 'keep' or 'reset'")
        return cls(**data)


def stage_schedule(recipe: ContinualRecipe, index: int) -> dict:
    stage = recipe.stages[index]
    if recipe.infinite is not None:
        offset = sum(s.steps for s in recipe.stages[:index])
        inner = {"type": "infinite", "max_lr": recipe.max_lr, **recipe.infinite}
        return {"type": "offset", "schedule": inner, "offset": offset}
    return stage.schedule or {"type": "warmup_cosine", "max_lr": recipe.max_lr, "total_steps": stage.steps}


class StageTrainer(CurriculumTrainer):
    """A ``CurriculumTrainer`` whose training order is a given sampler (new data + replay)."""

    def __init__(self, *args, stage_sampler=None, **kwargs):
        self.stage_sampler = stage_sampler
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return self.stage_sampler if self.stage_sampler is not None else super()._get_train_sampler(train_dataset)


def domain_names(stages_data: list[dict]) -> tuple[list[str], list[int]]:
    """One domain numbering over all stages (``<stage>/<domain>``) and each stage's shift into it."""
    names, shifts = [], []
    for data in stages_data:
        shifts.append(len(names))
        names += [f"{data['name']}/{n}" for n in data["meta"]["domain_names"]]
    return names, shifts


def _shift_domains(ds, shift: int, what: str):
    if shift == 0:
        return ds
    return ds.map(lambda b: {"domain_id": [d + shift for d in b["domain_id"]]}, batched=True, desc=what)


def _stage_data(stages_data: list[dict], index: int, seen: list[np.ndarray | None], seen_only: bool):
    """Stage ``index``'s blocks followed by the replay pool (earlier stages), with dense block ids."""
    from datasets import concatenate_datasets

    _, shifts = domain_names(stages_data)
    parts, pools, offset = [], [], 0
    for j in [index, *range(index)]:
        data = stages_data[j]
        ds = data["train"].select_columns(["input_ids", "domain_id", "block_id"])
        if j != index and seen_only and seen[j] is not None:
            ds = ds.select(seen[j].tolist())
        parts.append(_shift_domains(ds, shifts[j], f"stage data {data['name']}"))
        pools.append(np.arange(offset, offset + len(ds)))
        offset += len(ds)
    combined = concatenate_datasets(parts).remove_columns(["block_id"])
    combined = combined.add_column("block_id", np.arange(len(combined)))
    replay_pool = np.concatenate(pools[1:]) if len(pools) > 1 else np.zeros(0, np.int64)
    return combined, pools[0], replay_pool


def eval_sets(stages_data: list[dict]) -> dict:
    _, shifts = domain_names(stages_data)
    return {d["name"]: _shift_domains(d["validation"], s, f"validation {d['name']}")
            for d, s in zip(stages_data, shifts) if d["validation"] is not None}


def _load_stages(recipe: ContinualRecipe) -> list[dict]:
    from curricula.data.pack import load_blocks, read_meta
    from hf_trainer_ext.data import per_domain_subset

    out = []
    for s in recipe.stages:
        meta = read_meta(s.packed)
        val = per_domain_subset(load_blocks(s.packed, "validation"), recipe.max_eval_blocks) \
            if "validation" in meta["splits"] else None
        out.append({"name": s.name, "meta": meta, "train": load_blocks(s.packed, "train"), "validation": val})
    first = out[0]["meta"]["tokenizer"]
    for d in out[1:]:
        if d["meta"]["tokenizer"]["vocab_sha256"] != first["vocab_sha256"]:
            raise ContinualError(
                f"stage {d['name']!r} is packed with tokenizer {d['meta']['tokenizer']['name']!r}, stage "
                f"{out[0]['name']!r} with {first['name']!r}; pack every stage with the same tokenizer"
            )
    return out


def seen_rows(sampler, n_rows: int) -> np.ndarray:
    """The rows a stage trained on, recomputed from its deterministic stream."""
    return np.unique(np.fromiter(iter(sampler), dtype=np.int64))


def _run_stage(recipe, data, index, model, optimizer_state, seen, out: Path, replay: float):
    from hf_trainer_ext.arguments import CurriculumTrainingArguments
    from hf_trainer_ext.mixing_sampler import MixtureSampler

    stage = recipe.stages[index]
    combined, new_pool, replay_pool = _stage_data(data, index, seen, stage.replay_seen_only)
    names, _ = domain_names(data)
    base = {"per_device_train_batch_size": 16, "weight_decay": 0.1, "logging_steps": 25, "report_to": "none",
            "save_strategy": "no", "seed": 0, "disable_tqdm": False}
    base.update(recipe.training)
    args = CurriculumTrainingArguments(
        output_dir=str(out), max_steps=stage.steps, learning_rate=recipe.max_lr, eval_strategy="steps",
        eval_steps=recipe.eval_every, lr_schedule=json.dumps(stage_schedule(recipe, index)), **base)
    global_batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    weights = [1.0 - replay, replay]
    sampler = MixtureSampler([new_pool, replay_pool], weights, global_batch, stage.steps, args.seed + index,
                             names=[stage.name, "replay"])
    evals = eval_sets(data)
    trainer = StageTrainer(model=model, args=args, train_dataset=combined, eval_dataset=evals, domain_names=names,
                           stage_sampler=sampler)
    if optimizer_state is not None and recipe.optimizer == "keep":
        trainer.create_optimizer()
        trainer.optimizer.load_state_dict(optimizer_state)
    before = {k: v for k, v in trainer.evaluate().items() if k.endswith("_loss")}
    trainer.train()
    after = {k: v for k, v in trainer.evaluate().items() if k.endswith("_loss")}
    curve = [h for h in trainer.state.log_history if any(k.endswith("_loss") and k.startswith("eval_") for k in h)]
    stage_seen = seen_rows(sampler, len(combined))
    own_seen = stage_seen[stage_seen < len(new_pool)]  # rows of this stage's own blocks (they come first)
    return trainer, {"stage": stage.name, "replay": replay, "steps": stage.steps, "before": before, "after": after,
                     "curve": curve, "schedule": stage_schedule(recipe, index)}, own_seen


def _first_model(recipe: ContinualRecipe, data: list[dict]):
    """The model the first stage (or the union run) starts from: the recipe's folder, its tokenizer checked against
    the data, or a new GPT-2 initialised from the run's seed."""
    from hf_trainer_ext.reference import model_for_data

    return model_for_data(data[0]["meta"], recipe.model_name_or_path, seed=int(recipe.training.get("seed", 0)),
                          **recipe.model)


def run_continual(recipe: ContinualRecipe, out_dir: str | Path) -> dict:
    """All stages in order; variants of the last stage branch from the same state. Writes ``OUT/continual.json``."""
    out_dir = Path(out_dir)
    data = _load_stages(recipe)
    model = _first_model(recipe, data)
    seen: list[np.ndarray | None] = [None] * len(recipe.stages)
    results, opt_state = [], None
    last = len(recipe.stages) - 1
    for i in range(last):
        trainer, res, own = _run_stage(recipe, data, i, model, opt_state, seen, out_dir / recipe.stages[i].name,
                                       recipe.stages[i].replay)
        seen[i] = own
        trainer.save_model()  # OUT/<stage>: the checkpoint every later stage (and variant) starts from
        opt_state = copy.deepcopy(trainer.optimizer.state_dict())
        results.append(res)
    replays = recipe.variants.get("replay") or [recipe.stages[last].replay]
    branch = copy.deepcopy(model.state_dict())
    variants = []
    for x in replays:
        Stage(recipe.stages[last].name, recipe.stages[last].packed, recipe.stages[last].steps, replay=x)  # validate
        model.load_state_dict(branch)
        name = f"{recipe.stages[last].name}-replay{int(round(100 * x))}"
        trainer, res, _ = _run_stage(recipe, data, last, model, opt_state, seen, out_dir / name, x)
        trainer.save_model()
        variants.append(res)
    result = {"stages": results, "last_stage_variants": variants, "recipe": _jsonable(asdict(recipe))}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "continual.json").write_text(json.dumps(result, indent=2))
    plot_continual(result, out_dir / "continual.png")
    return result


def run_union(recipe: ContinualRecipe, out_dir: str | Path) -> dict:
    """The from-scratch reference of continual pretraining: one run on the union of all stages' data with the same
    total steps, each stage's blocks drawn in proportion to its steps (the same tokens of each dataset as the staged
    run, all at once), one warmup + cosine schedule. Writes ``OUT/union.json``."""
    from dataclasses import replace

    total = sum(s.steps for s in recipe.stages)
    last = recipe.stages[-1]
    earlier = 1.0 - last.steps / total  # share of every batch from the earlier stages' data
    union = replace(recipe, infinite=None, variants={}, stages=[
        *recipe.stages[:-1], replace(last, name="union", steps=total, replay=earlier, replay_seen_only=False,
                                     schedule=None)])
    data = _load_stages(recipe)
    model = _first_model(recipe, data)
    seen: list[np.ndarray | None] = [None] * len(recipe.stages)
    out_dir = Path(out_dir)
    trainer, res, _ = _run_stage(union, data, len(recipe.stages) - 1, model, None, seen, out_dir / "union", earlier)
    trainer.save_model()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "union.json").write_text(json.dumps({"union": res, "recipe": _jsonable(asdict(recipe))}, indent=2))
    return res


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def plot_continual(result: dict, path: Path) -> Path:
    """Validation loss of every stage's data over global steps; one line style per last-stage variant."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    offset = sum(s["steps"] for s in result["stages"])
    keys = sorted({k for s in result["stages"] + result["last_stage_variants"] for h in s["curve"] for k in h
                   if k.startswith("eval_") and k.endswith("_loss")})
    colors = {k: f"C{i}" for i, k in enumerate(keys)}
    start = 0
    for s in result["stages"]:
        for k in keys:
            pts = [(start + h["step"], h[k]) for h in s["curve"] if k in h]
            if pts:
                ax.plot(*zip(*pts), color=colors[k], lw=1.5)
        start += s["steps"]
        ax.axvline(start, color="0.5", ls=":", lw=1)
    styles = ["-", "--", "-.", ":"]
    for v_i, v in enumerate(result["last_stage_variants"]):
        for k in keys:  # each line starts from the state the variant branched from
            pts = [(offset, v["before"][k])] if k in v["before"] else []
            pts += [(offset + h["step"], h[k]) for h in v["curve"] if k in h]
            if pts:
                label = f"{k[5:-5]} data, last stage replay {100 * v['replay']:.0f}%"
                ax.plot(*zip(*pts), color=colors[k], ls=styles[v_i % 4], lw=1.2, label=label)
    ax.set_xlabel("optimizer step (all stages)")
    ax.set_ylabel("validation loss")
    ax.set_title("Continual pretraining: validation loss on each stage's data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
