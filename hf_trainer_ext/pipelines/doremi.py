"""The DoReMi pipeline: reference → cached reference losses → Group-DRO proxy → averaged weights, iterated; then the
main model on the final weights (``mode: proxy``), or one main run that learns the weights itself (``mode: online``).

Every run is a ``CurriculumTrainer`` with a method from ``curricula.methods``: the reference and the main model a
``mixture``, the proxy ``group_dro``, the one-run main model ``doremi_online``. Shared files (``doremi.json``,
``domain_weights.json``, the plot, the reference cache) are written by the main process only.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from curricula.methods.doremi.update import CONVENTION_DEFAULTS
from curricula.data.packed import PackedData
from curricula.errors import ConfigError
from curricula.methods import DoReMiOnlineConfig, DoReMiRecipe, GroupDROConfig, baseline_weights
from curricula.mixing.weights import l1_change, weights_json
from curricula.report.training_plots import plot_rounds
from curricula.run_layout import read_json, write_json
from hf_trainer_ext.pipelines.runs import PipelineRun, data_identity, eval_curve
from hf_trainer_ext.reference import model_for_data, score_reference
from hf_trainer_ext.trainer import CurriculumTrainer


def _args(recipe: DoReMiRecipe, run: PipelineRun, **kw):
    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    base = {"per_device_train_batch_size": 16, "learning_rate": 2e-3, "lr_scheduler_type": "cosine",
            "warmup_steps": 0.05, "weight_decay": 0.1, "logging_steps": 25, "report_to": "none",
            "eval_strategy": "no", "seed": 0, "disable_tqdm": False, **run.training_args()}
    base.update(recipe.training)
    base.update(kw)
    return CurriculumTrainingArguments(output_dir=str(run.out), max_steps=run.steps, **base)


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _ppl(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "ppl" in k or k == "eval_loss"}


def _fingerprint(recipe: DoReMiRecipe, role: str, data: PackedData, weights, steps: int, **extra) -> dict:
    return {"role": role, "data": data_identity(data.meta), "weights": [float(x) for x in weights], "steps": steps,
            "model": recipe.model, "training": recipe.training, "max_eval_blocks": recipe.max_eval_blocks, **extra}


def _dro_fingerprint(recipe: DoReMiRecipe) -> dict:
    """The Group-DRO settings a finished proxy (or one-run main model) was trained with; the official-code options
    only when set, so that runs made before they existed are still recognised."""
    return {k: v for k, v in recipe.dro_options().items()
            if k not in CONVENTION_DEFAULTS or v != CONVENTION_DEFAULTS[k]}


def _main_fingerprint(recipe: DoReMiRecipe) -> dict:
    """The main run's own arguments, only when set (runs made before they existed are still recognised)."""
    return {"main_training": recipe.main_training} if recipe.main_training else {}


def _cache_ready(cache: Path, n_blocks: int, fingerprint: dict) -> bool:
    """A complete reference cache for these blocks from this reference (its meta file is written last)."""
    from hf_trainer_ext.reference import LOSSES_FILE, META_FILE

    if not (cache / LOSSES_FILE).is_file() or not (cache / META_FILE).is_file():
        return False
    meta = read_json(cache / META_FILE, "reference cache record")
    return meta.get("n_blocks") == n_blocks and meta.get("fingerprint") == json.loads(json.dumps(fingerprint))


def run_doremi(recipe: DoReMiRecipe, packed: str | Path, out_dir: str | Path) -> dict:
    """Iterated DoReMi on packed data; returns (and writes to ``out_dir/doremi.json``) the weights of every round.

    Resumable: a rerun with the same recipe and ``--out`` reuses every finished run (reference, its cache, proxy,
    main), resumes an interrupted one from its newest complete checkpoint, and trains only what is left."""
    from transformers import AutoModelForCausalLM

    data = PackedData.load(packed)
    out_dir = Path(out_dir)
    names, identity = data.domain_names, data.tokenizer
    if recipe.domains is not None:
        missing = [d for d in recipe.domains if d not in names]
        if missing:
            raise ConfigError(f"the recipe's domain(s) {missing} are not in {packed} (it has {names}); "
                              "fix the recipe's domains or pack a corpus that has them")
    train = data.train
    evaluation = data.validation(recipe.max_eval_blocks)
    weights = baseline_weights(recipe.baseline_weights, data.meta)
    rounds = []
    seed = 10_000 * int(recipe.training.get("seed", 0))  # model inits follow the run's seed (distinct per role)
    result: dict = {"domains": names, "tokenizer": identity, "mode": recipe.mode}
    common = dict(train_dataset=train, domain_names=names, tokenizer_identity=identity)
    for r in range(recipe.rounds if recipe.mode == "proxy" else 1):
        rd = out_dir / f"round{r}"
        ref_run = PipelineRun(rd / "reference", _fingerprint(recipe, "reference", data, weights,
                                                             recipe.reference_steps, round=r), recipe.reference_steps)
        ref_model, done = None, ref_run.finished()
        if done is None:
            ref_model = model_for_data(data.meta, seed=seed + r, **recipe.model)
            ref = CurriculumTrainer(model=ref_model, args=_args(recipe, ref_run, domain_weights=weights.tolist()),
                                    eval_dataset=evaluation, **common)
            ref.train(resume_from_checkpoint=ref_run.resume())
            ref.save_model()
            done = ref_run.done({"eval": _ppl(ref.evaluate()) if evaluation is not None else {}})
        ref_eval = done["eval"]
        lineage = [{"role": "reference", "path": str(ref_run.out)}]
        kw: dict = {}
        if recipe.reference == "cached":
            cache = rd / "reference_losses"
            if not _cache_ready(cache, len(train), ref_run.fingerprint):
                # every process scores its share; under several processes from the saved (full) weights, since the
                # trained model may be sharded (FSDP): the reference is replicated for scoring
                from accelerate import PartialState

                model = ref_model if ref_model is not None and PartialState().num_processes == 1 else \
                    AutoModelForCausalLM.from_pretrained(ref_run.out).to(PartialState().device)
                score_reference(model, train, cache, tokenizer_identity=identity, model_name=f"round{r}/reference",
                                extra={"fingerprint": ref_run.fingerprint})
            kw["reference_losses"] = cache
        else:
            kw["reference_model"] = ref_model or AutoModelForCausalLM.from_pretrained(ref_run.out)
            kw["live_reference"] = True
        if recipe.mode == "online":
            fp = _fingerprint(recipe, "main-online", data, weights, recipe.main_steps, sample_from=recipe.sample_from,
                              **_dro_fingerprint(recipe), **_main_fingerprint(recipe))
            main_run = PipelineRun(out_dir / "main", fp, recipe.main_steps)
            done = main_run.finished()
            if done is None:
                main = CurriculumTrainer(
                    model=model_for_data(data.meta, seed=seed + 2000, **recipe.model),
                    args=_args(recipe, main_run, **recipe.main_training),
                    curriculum=DoReMiOnlineConfig(**recipe.dro_options(), initial=weights.tolist(),
                                                  sample_from=recipe.sample_from),
                    eval_dataset=evaluation, lineage=lineage, **common, **kw)
                trained = main.train(resume_from_checkpoint=main_run.resume())
                main.save_model()
                done = main_run.done({"weights": main.curriculum.result()["weights"],
                                      "eval": _ppl(main.evaluate()) if evaluation is not None else None,
                                      "curve": eval_curve(main.state.log_history),
                                      "seconds_per_step": trained.metrics["train_runtime"] / recipe.main_steps})
            new = np.array(done["weights"])
            rounds.append({"round": 0, "reference_weights": weights.tolist(), "weights": new.tolist(),
                           "l1_change": l1_change(new, weights), "reference_eval": ref_eval})
            if done["eval"] is not None:
                result["main_eval"] = done["eval"]
            result["main_curve"] = done.get("curve", [])
            weights = new
            break
        proxy_run = PipelineRun(rd / "proxy", _fingerprint(recipe, "proxy", data, weights, recipe.proxy_steps, round=r,
                                                           reference=recipe.reference, **_dro_fingerprint(recipe)),
                                recipe.proxy_steps)
        done = proxy_run.finished()
        if done is None:
            proxy = CurriculumTrainer(model=model_for_data(data.meta, seed=seed + 1000 + r, **recipe.model),
                                      args=_args(recipe, proxy_run),
                                      curriculum=GroupDROConfig(**recipe.dro_options()),
                                      lineage=lineage, **common, **kw)
            proxy.train(resume_from_checkpoint=proxy_run.resume())
            done = proxy_run.done({"weights": proxy.curriculum.result()["weights"]})
        new = np.array(done["weights"])
        change = l1_change(new, weights)
        rounds.append({"round": r, "reference_weights": weights.tolist(), "weights": new.tolist(), "l1_change": change,
                       "reference_eval": ref_eval})
        weights = new
        if change < recipe.stop_l1:
            break
    result.update({"rounds": rounds, "final_weights": weights.tolist()})
    if recipe.mode == "proxy" and recipe.run_main:
        main_run = PipelineRun(out_dir / "main", _fingerprint(recipe, "main", data, weights, recipe.main_steps,
                                                             **_main_fingerprint(recipe)), recipe.main_steps)
        done = main_run.finished()
        if done is None:
            main = CurriculumTrainer(model=model_for_data(data.meta, seed=seed + 2000, **recipe.model),
                                     args=_args(recipe, main_run, domain_weights=weights.tolist(),
                                                **recipe.main_training),
                                     eval_dataset=evaluation, **common,
                                     lineage=[{"role": "proxy", "path": str(out_dir / f"round{len(rounds) - 1}" / "proxy")}])
            trained = main.train(resume_from_checkpoint=main_run.resume())
            main.save_model()
            done = main_run.done({"eval": _ppl(main.evaluate()) if evaluation is not None else None,
                                  "curve": eval_curve(main.state.log_history),
                                  "seconds_per_step": trained.metrics["train_runtime"] / recipe.main_steps})
        if done["eval"] is not None:
            result["main_eval"] = done["eval"]
        result["main_curve"] = done.get("curve", [])
    if _is_main():
        doc = weights_json(weights, names, identity, {"rounds": rounds, "recipe": asdict(recipe)})
        write_json(out_dir / "domain_weights.json", doc)
        write_json(out_dir / "doremi.json", result)
        plot_rounds(rounds, names, out_dir / "domain_weights_by_round.png")
    return result
