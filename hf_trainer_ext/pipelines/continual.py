"""Continual pretraining in stages D0 → D1 → …, with LR re-warm/re-decay or an infinite schedule, and replay.

Each stage is a ``CurriculumTrainer`` run on the previous stage's weights (and, with ``optimizer: keep``, its AdamW
state) whose method is ``replay`` (``curricula.methods.mixture``): its training rows are the stage's own blocks
followed by the replay pool, drawn in proportions (1 - x, x): compute-equivalent replay (replayed blocks take slots of
new ones; the batch size stays), exact counts per batch with rounding carried across batches, the identical stream on
every rank. The replay pool is every earlier stage's blocks (``replay_seen_only: false``) or exactly those an earlier
stage trained on, recomputed from its deterministic stream (``true``, the gpt-neox PR's behaviour). Throughout, every
stage's validation data is evaluated (``eval_<stage>_loss``), so forgetting and adaptation show as curves.

Variants of the last stage (e.g. replay 0 %, 5 %, 25 %) branch from the same end-of-previous-stage state. Stage and
variant names are folder names under ``--out`` (validated by the recipe).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from transformers import TrainerCallback

from curricula.data.packed import PackedData
from curricula.methods import ReplayConfig
from curricula.methods.continual.pipeline import (ContinualError, ContinualRecipe, Stage, known_stage_names,  # noqa: F401
                                           stage_schedule)
from curricula.report.training_plots import plot_continual
from curricula.run_layout import write_json
from hf_trainer_ext.pipelines.runs import PipelineRun, data_identity
from hf_trainer_ext.trainer import CurriculumTrainer

OPTIMIZER = "final_optimizer.pt"  # the stage's AdamW state at its end (a plain state dict: loaded weights_only)
SEEN = "seen_rows.npy"  # the rows of the stage's own blocks it trained on (the seen-only replay pool of later stages)


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
    return ds.map(lambda b: {"domain_id": [d + shift for d in b["domain_id"]]}, batched=True, desc=what,
                  keep_in_memory=True)  # never a cache file next to the (possibly read-only) input data


def _stage_data(stages_data: list[dict], index: int, seen: list[np.ndarray | None], seen_only: bool):
    """Stage ``index``'s blocks followed by the replay pool (earlier stages), with dense block ids."""
    from datasets import concatenate_datasets

    _, shifts = domain_names(stages_data)
    parts, pools, offset = [], [], 0
    for j in [index, *range(index)]:
        data = stages_data[j]
        ds = data["train"].select_columns(["input_ids", "domain_id", "block_id"])
        if j != index and seen_only and seen[j] is not None:
            ds = ds.select(seen[j].tolist(), keep_in_memory=True).flatten_indices(keep_in_memory=True)
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
    out = []
    for s in recipe.stages:
        data = PackedData.load(s.packed)
        out.append({"name": s.name, "meta": data.meta, "train": data.train,
                    "validation": data.validation(recipe.max_eval_blocks)})
    first = out[0]["meta"]["tokenizer"]
    for d in out[1:]:
        if d["meta"]["tokenizer"]["vocab_sha256"] != first["vocab_sha256"]:
            raise ContinualError(
                f"stage {d['name']!r} is packed with tokenizer {d['meta']['tokenizer']['name']!r}, stage "
                f"{out[0]['name']!r} with {first['name']!r}; pack every stage with the same tokenizer"
            )
    return out


def seen_rows(curriculum) -> np.ndarray:
    """The rows a stage trained on, recomputed from its deterministic stream."""
    return np.unique(np.concatenate(list(curriculum.batches(0))))


def _run_stage(recipe, data, index, model, optimizer_state, seen, run: PipelineRun, replay: float, lineage=()):
    """Train one stage (or resume it); returns its result, the rows of its own blocks it trained on."""
    import torch

    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    stage = recipe.stages[index]
    combined, new_pool, _ = _stage_data(data, index, seen, stage.replay_seen_only)
    names, _ = domain_names(data)
    base = {"per_device_train_batch_size": 16, "weight_decay": 0.1, "logging_steps": 25, "report_to": "none",
            "seed": 0, "disable_tqdm": False, **run.training_args()}
    base.update(recipe.training)
    resume = run.resume()
    # the "before" evaluation is Trainer's eval_on_start (at step 0, after the model is prepared: under FSDP2 a model
    # cannot be evaluated before the trainer wraps it with its optimizer); a resumed stage has it in its log already
    args = CurriculumTrainingArguments(
        output_dir=str(run.out), max_steps=stage.steps, learning_rate=recipe.max_lr, eval_strategy="steps",
        eval_steps=recipe.eval_every, eval_on_start=resume is None, lr_schedule=stage_schedule(recipe, index), **base)
    method = ReplayConfig(replay=replay, new_rows=len(new_pool), stage=stage.name, seed=args.seed + index)
    trainer = CurriculumTrainer(model=model, args=args, train_dataset=combined, eval_dataset=eval_sets(data),
                                domain_names=names, curriculum=method, tokenizer_identity=data[0]["meta"]["tokenizer"],
                                lineage=list(lineage))
    if optimizer_state is not None and recipe.optimizer == "keep" and resume is None:
        # a resumed stage's checkpoint holds its own AdamW state (Trainer loads it before on_train_begin)
        trainer.add_callback(OptimizerHandoff(trainer, optimizer_state))
    trainer.train(resume_from_checkpoint=resume)
    before = {k: v for h in trainer.state.log_history if h.get("step") == 0 for k, v in h.items()
              if k.startswith("eval_") and k.endswith("_loss")}
    after = {k: v for k, v in trainer.evaluate().items() if k.endswith("_loss")}
    curve = [h for h in trainer.state.log_history  # during training ("before" is the step-0 evaluation)
             if h.get("step", 0) > 0 and any(k.endswith("_loss") and k.startswith("eval_") for k in h)]
    stage_seen = seen_rows(trainer.curriculum)
    own_seen = stage_seen[stage_seen < len(new_pool)]  # rows of this stage's own blocks (they come first)
    trainer.save_model()  # OUT/<stage>: what every later stage (and variant) starts from
    optimizer = full_optimizer_state(trainer)  # collective under DDP/FSDP
    if trainer.args.should_save:  # the hand-off: the AdamW state and the rows trained, next to the weights
        torch.save(optimizer, run.out / OPTIMIZER)
        np.save(run.out / SEEN, own_seen)
    res = {"stage": stage.name, "replay": replay, "steps": stage.steps, "before": before, "after": after,
           "curve": curve, "schedule": stage_schedule(recipe, index)}
    return run.done(res)


def full_optimizer_state(trainer) -> dict:
    """The optimizer's whole state, for the next stage: under several processes (DDP, FSDP2 with its sharded state)
    gathered by ``torch.distributed.checkpoint`` into one full, parameter-name-keyed state dict on CPU."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
    if trainer.accelerator.num_processes > 1:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        state = get_optimizer_state_dict(trainer.model_wrapped, optimizer,
                                         options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {"format": "full", "state": state}
    return {"format": "torch", "state": optimizer.state_dict()}


class OptimizerHandoff(TrainerCallback):
    """Loads the previous stage's optimizer state once Trainer has built (and, under FSDP2, sharded) the optimizer,
    then puts the stage's own LR schedule back (loading restores the old stage's last LR)."""

    def __init__(self, trainer, state: dict):
        self.trainer, self.state = trainer, state

    def on_train_begin(self, args, state, control, **kwargs):
        t = self.trainer
        optimizer = getattr(t.optimizer, "optimizer", t.optimizer)
        if self.state["format"] == "full":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(t.model_wrapped, optimizer, optim_state_dict=self.state["state"],
                                     options=StateDictOptions(full_state_dict=True))
        else:
            optimizer.load_state_dict(self.state["state"])
        if hasattr(t.lr_scheduler, "_apply"):  # ScheduleLR: the LR of the stage's current step
            t.lr_scheduler._apply()


def _first_model(recipe: ContinualRecipe, data: list[dict]):
    """The model the first stage (or the union run) starts from: the recipe's folder, its tokenizer checked against
    the data, or a new GPT-2 initialised from the run's seed."""
    from hf_trainer_ext.reference import model_for_data

    return model_for_data(data[0]["meta"], recipe.model_name_or_path, seed=int(recipe.training.get("seed", 0)),
                          **recipe.model)


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _fingerprint(recipe: ContinualRecipe, data: list[dict], index: int, replay: float) -> dict:
    stages = [{**asdict(s), "data": data_identity(d["meta"])} for s, d in zip(recipe.stages[: index + 1], data)]
    return {"stages": stages, "replay": replay, "model": recipe.model, "model_name_or_path": recipe.model_name_or_path,
            "optimizer": recipe.optimizer, "max_lr": recipe.max_lr, "infinite": recipe.infinite,
            "eval_every": recipe.eval_every, "max_eval_blocks": recipe.max_eval_blocks, "training": recipe.training}


def _start_state(recipe: ContinualRecipe, data: list[dict], prev: Path | None):
    """The weights and AdamW state a stage starts from: the first model, or what the previous stage saved."""
    import torch
    from transformers import AutoModelForCausalLM

    if prev is None:
        return _first_model(recipe, data), None
    state = torch.load(prev / OPTIMIZER, weights_only=True) if recipe.optimizer == "keep" else None
    return AutoModelForCausalLM.from_pretrained(prev), state


def run_continual(recipe: ContinualRecipe, out_dir: str | Path) -> dict:
    """All stages in order; variants of the last stage branch from the same state. Writes ``OUT/continual.json``.

    Each stage hands over through its folder (weights, AdamW state, rows trained), so a rerun after a crash reuses the
    finished stages, resumes the interrupted one from its newest complete checkpoint and trains only what is left."""
    out_dir = Path(out_dir)
    data = _load_stages(recipe)
    seen: list[np.ndarray | None] = [None] * len(recipe.stages)
    results, prev = [], None
    last = len(recipe.stages) - 1
    lineage: list[dict] = []
    for i in range(last):
        stage = recipe.stages[i]
        if stage.steps == 0:  # already known to the starting model: only replayed (all its blocks) and evaluated
            results.append({"stage": stage.name, "replay": 0.0, "steps": 0, "trained": False, "curve": []})
            continue
        run = PipelineRun(out_dir / stage.name, _fingerprint(recipe, data, i, stage.replay), stage.steps)
        res = run.finished()
        if res is None:
            model, opt_state = _start_state(recipe, data, prev)
            res = _run_stage(recipe, data, i, model, opt_state, seen, run, stage.replay, lineage)
        seen[i] = np.load(run.out / SEEN)
        results.append(res)
        prev = run.out
        lineage = [{"role": "previous_stage", "path": str(run.out)}]
    variants = []
    for name, x in recipe.variant_names():
        run = PipelineRun(out_dir / name, _fingerprint(recipe, data, last, x), recipe.stages[last].steps)
        res = run.finished()
        if res is None:
            model, opt_state = _start_state(recipe, data, prev)
            res = _run_stage(recipe, data, last, model, opt_state, seen, run, x, lineage)
        variants.append(res)
    result = {"stages": results, "last_stage_variants": variants, "recipe": _jsonable(asdict(recipe))}
    if _is_main():
        write_json(out_dir / "continual.json", result)
        plot_continual(result, out_dir / "continual.png")
    return result


def run_union(recipe: ContinualRecipe, out_dir: str | Path) -> dict:
    """The from-scratch reference of continual pretraining: one run on the union of all stages' data with the same
    total steps, each stage's blocks drawn in proportion to its steps (the same tokens of each dataset as the staged
    run, all at once), one warmup + cosine schedule. Writes ``OUT/union.json``."""
    known = known_stage_names(recipe.stages)
    if known:
        raise ContinualError(
            f"a union run trains from scratch on every stage's data, but stage(s) {known} have steps: 0 (data the "
            "starting model already knows); compare against a union run only for recipes that train every stage"
        )
    total = sum(s.steps for s in recipe.stages)
    last = recipe.stages[-1]
    earlier = 1.0 - last.steps / total  # share of every batch from the earlier stages' data
    union = replace(recipe, infinite=None, variants={}, stages=[
        *recipe.stages[:-1], replace(last, name="union", steps=total, replay=earlier, replay_seen_only=False,
                                     schedule=None)])
    data = _load_stages(recipe)
    seen: list[np.ndarray | None] = [None] * len(recipe.stages)
    out_dir = Path(out_dir)
    index = len(recipe.stages) - 1
    run = PipelineRun(out_dir / "union", _fingerprint(union, data, index, earlier), total)
    res = run.finished()
    if res is None:
        res = _run_stage(union, data, index, _first_model(recipe, data), None, seen, run, earlier)
    if _is_main():
        write_json(out_dir / "union.json", {"union": res, "recipe": _jsonable(asdict(recipe))})
    return res


def _jsonable(x):
    import json

    return json.loads(json.dumps(x, default=str))
