"""The DoReMi pipeline: reference → cached reference losses → Group-DRO proxy → averaged weights, iterated; then the
main model on the final weights (``mode: proxy``), or one main run that learns the weights itself (``mode: online``).

Every run is a ``CurriculumTrainer`` with a method from ``curricula.methods``: the reference and the main model a
``mixture``, the proxy ``group_dro``, the one-run main model ``doremi_online``. Shared files (``doremi.json``,
``domain_weights.json``, the plot, the reference cache) are written by the main process only.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from curricula.curriculum.doremi import l1_change, weights_json
from curricula.data.packed import PackedData
from curricula.errors import ConfigError
from curricula.methods import DoReMiOnlineConfig, GroupDROConfig
from curricula.pipelines.doremi import DoReMiRecipe, baseline_weights
from curricula.report.training_plots import plot_rounds
from curricula.run_layout import write_json
from hf_trainer_ext.reference import model_for_data, score_reference
from hf_trainer_ext.trainer import CurriculumTrainer


def _args(recipe: DoReMiRecipe, out: Path, steps: int, **kw):
    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    base = {"per_device_train_batch_size": 16, "learning_rate": 2e-3, "lr_scheduler_type": "cosine",
            "warmup_steps": 0.05, "weight_decay": 0.1, "logging_steps": 25, "report_to": "none",
            "save_strategy": "no", "eval_strategy": "no", "seed": 0, "disable_tqdm": False}
    base.update(recipe.training)
    base.update(kw)
    return CurriculumTrainingArguments(output_dir=str(out), max_steps=steps, **base)


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _ppl(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "ppl" in k or k == "eval_loss"}


def run_doremi(recipe: DoReMiRecipe, packed: str | Path, out_dir: str | Path) -> dict:
    """Iterated DoReMi on packed data; returns (and writes to ``out_dir/doremi.json``) the weights of every round."""
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
    for r in range(recipe.rounds if recipe.mode == "proxy" else 1):
        rd = out_dir / f"round{r}"
        ref_model = model_for_data(data.meta, seed=seed + r, **recipe.model)
        ref = CurriculumTrainer(model=ref_model, args=_args(recipe, rd / "reference", recipe.reference_steps,
                                                               domain_weights=weights.tolist()),
                                train_dataset=train, eval_dataset=evaluation, domain_names=names,
                                tokenizer_identity=identity)
        ref.train()
        ref_eval = ref.evaluate() if evaluation is not None else {}
        kw: dict = {}
        if recipe.reference == "cached":
            if _is_main():
                score_reference(ref_model, train, rd / "reference_losses", tokenizer_identity=identity,
                                model_name=f"round{r}/reference")
            ref.accelerator.wait_for_everyone()
            kw["reference_losses"] = rd / "reference_losses"
        else:
            kw["reference_model"] = ref_model
        lineage = [{"role": "reference", "path": str(rd / "reference")}]
        if recipe.mode == "online":
            main = CurriculumTrainer(
                model=model_for_data(data.meta, seed=seed + 2000, **recipe.model),
                args=_args(recipe, out_dir / "main", recipe.main_steps),
                curriculum=DoReMiOnlineConfig(eta=recipe.eta, smoothing=recipe.smoothing, initial=weights.tolist(),
                                              sample_from=recipe.sample_from),
                train_dataset=train, eval_dataset=evaluation, domain_names=names, tokenizer_identity=identity,
                lineage=lineage, **kw)
            main.train()
            main.save_model()
            new = main.curriculum.dro.average.copy()
            rounds.append({"round": 0, "reference_weights": weights.tolist(), "weights": new.tolist(),
                           "l1_change": l1_change(new, weights), "reference_eval": _ppl(ref_eval)})
            if evaluation is not None:
                result["main_eval"] = _ppl(main.evaluate())
            weights = new
            break
        proxy = CurriculumTrainer(model=model_for_data(data.meta, seed=seed + 1000 + r, **recipe.model),
                                  args=_args(recipe, rd / "proxy", recipe.proxy_steps),
                                  curriculum=GroupDROConfig(eta=recipe.eta, smoothing=recipe.smoothing),
                                  train_dataset=train, domain_names=names, tokenizer_identity=identity,
                                  lineage=lineage, **kw)
        proxy.train()
        new = proxy.curriculum.dro.average.copy()
        change = l1_change(new, weights)
        rounds.append({"round": r, "reference_weights": weights.tolist(), "weights": new.tolist(), "l1_change": change,
                       "reference_eval": _ppl(ref_eval)})
        weights = new
        if change < recipe.stop_l1:
            break
    result.update({"rounds": rounds, "final_weights": weights.tolist()})
    if recipe.mode == "proxy" and recipe.run_main:
        main = CurriculumTrainer(model=model_for_data(data.meta, seed=seed + 2000, **recipe.model),
                                 args=_args(recipe, out_dir / "main", recipe.main_steps,
                                            domain_weights=weights.tolist()),
                                 train_dataset=train, eval_dataset=evaluation, domain_names=names,
                                 tokenizer_identity=identity,
                                 lineage=[{"role": "proxy", "path": str(out_dir / f"round{len(rounds) - 1}" / "proxy")}])
        main.train()
        main.save_model()
        if evaluation is not None:
            result["main_eval"] = _ppl(main.evaluate())
    if _is_main():
        doc = weights_json(weights, names, identity, {"rounds": rounds, "recipe": asdict(recipe)})
        write_json(out_dir / "domain_weights.json", doc)
        write_json(out_dir / "doremi.json", result)
        plot_rounds(rounds, names, out_dir / "domain_weights_by_round.png")
    return result
