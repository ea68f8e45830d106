"""DoReMi in one run vs three runs vs uniform, at equal total compute, and LFR over the DoReMi weights.

    python scripts/experiments/doremi_round2.py --seed 0 [--budget 300]

Compute is counted in optimizer steps of the same model size and batch (B = ``--budget``):

* **3 runs** (``curricula doremi``, one round): a reference on uniform weights (B steps), a Group-DRO proxy against
  its cached losses (B), then the main model on the averaged weights (B): 3B in all.
* **one run** (``method: doremi_online``): the same reference (B), then one main run of 2B steps whose own excess
  loss over the reference updates the weights it samples from: 3B in all.
* **uniform**: the main model on uniform weights for 3B steps (all the compute spent on the model itself), and for
  B steps (the same main-model steps as the 3-run pipeline's main model).

Then, on the ``--compose-packed`` data (blocks from every source), with the 3-run pipeline's weights: the LFR plan
alone, the fixed DoReMi mixture alone, and LFR over the DoReMi mixture (``lfr_doremi``'s semantics), at the plan's
number of steps (LFR vs random on this data and these seeds is round 1's ``--cap spread`` check). Every main model starts from the same init and is evaluated every 50 steps.
Writes ``runs/experiments-r2/doremi/seed<S>/result.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (EVAL_BLOCKS, EVAL_EVERY, MODEL, RUNS, TRAINING, eval_history, merge_evals, packed,  # noqa: E402
                    setup, write_result)

R2 = RUNS.parent / "experiments-r2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=300, help="B: steps of the reference, of the proxy, of the 3-run main")
    ap.add_argument("--packed", default="en-cap2000")
    ap.add_argument("--compose-packed", default="en-cap512-spread")
    ap.add_argument("--smoothing-online", type=float, default=0.05)
    ap.add_argument("--eta", type=float, default=1.0, help="Group-DRO step size (proxy and one run)")
    ap.add_argument("--proxy-steps", type=int, help="steps of the proxy (default: the budget B)")
    ap.add_argument("--no-compose", action="store_true", help="skip the LFR-over-DoReMi composition runs")
    ap.add_argument("--mains", nargs="+", default=["doremi_3run", "uniform_B", "uniform_3B", "doremi_1run"],
                    help="which main models to train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(R2 / "doremi"))
    a = ap.parse_args()
    setup(a.threads)
    started = time.time()

    from curricula.data.pack import load_blocks, read_meta
    from curricula.methods import DoReMiOnlineConfig
    from curricula.methods import DoReMiRecipe, baseline_weights
    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments
    from hf_trainer_ext.data import per_domain_subset
    from hf_trainer_ext.pipelines.doremi import run_doremi
    from hf_trainer_ext.reference import model_for_data

    B = a.budget
    data = packed(a.packed)
    meta = read_meta(data)
    out = Path(a.out) / f"seed{a.seed}"
    training = {k: v for k, v in TRAINING.items() if k != "per_device_eval_batch_size"}
    recipe = DoReMiRecipe(baseline_weights="uniform", rounds=1, reference="cached", reference_steps=B,
                          proxy_steps=a.proxy_steps or B,
                          eta=a.eta,
                          run_main=False, model=MODEL, training={**training, "seed": a.seed},
                          max_eval_blocks=EVAL_BLOCKS)
    doremi = run_doremi(recipe, data, out / "doremi")  # reference (B) + its cached losses + proxy (B)
    weights = doremi["final_weights"]
    cache = out / "doremi" / "round0" / "reference_losses"

    def train(name: str, train_data, evaluation, names, **kw) -> dict:
        args = CurriculumTrainingArguments(**TRAINING, output_dir=str(out / name), seed=a.seed, eval_strategy="steps",
                                           eval_steps=EVAL_EVERY, **kw.pop("args", {}))
        model = model_for_data(meta, seed=10_000 * a.seed + 5000, **MODEL)  # one init for every main model
        trainer = CurriculumTrainer(model=model, args=args, train_dataset=train_data, eval_dataset=evaluation,
                                    domain_names=names, **kw)
        trainer.train()
        if trainer.state.global_step % EVAL_EVERY:
            trainer.evaluate()
        run = {"steps": trainer.state.global_step, "evals": merge_evals(eval_history(trainer.state.log_history))}
        dro = getattr(trainer.curriculum, "dro", None)
        if dro is not None:
            run["weights_average"], run["weights_last"] = dro.average.tolist(), dro.weights.tolist()
        print(f"{name}: {run['steps']} steps, final eval loss {run['evals'][-1]['eval_loss']:.4f}", flush=True)
        return run

    names = meta["domain_names"]
    blocks = load_blocks(data, "train")
    evaluation = per_domain_subset(load_blocks(data, "validation"), EVAL_BLOCKS)
    uniform = baseline_weights("uniform", meta).tolist()
    runs = {
        "doremi_3run": lambda: train("main-doremi-3run", blocks, evaluation, names,
                                     args={"max_steps": B, "domain_weights": weights}),
        "uniform_B": lambda: train("main-uniform-B", blocks, evaluation, names,
                                   args={"max_steps": B, "domain_weights": uniform}),
        "uniform_3B": lambda: train("main-uniform-3B", blocks, evaluation, names,
                                    args={"max_steps": 3 * B, "domain_weights": uniform}),
        "doremi_1run": lambda: train("main-doremi-1run", blocks, evaluation, names, args={"max_steps": 2 * B},
                                     curriculum=DoReMiOnlineConfig(eta=a.eta, smoothing=a.smoothing_online,
                                                                   initial="uniform"),
                                     reference_losses=cache, tokenizer_identity=meta["tokenizer"]),
    }
    unknown = sorted(set(a.mains) - set(runs))
    if unknown:
        sys.exit(f"--mains: unknown {unknown}; choose from {sorted(runs)}")
    mains = {name: runs[name]() for name in runs if name in a.mains}
    result = {"experiment": "doremi_round2", "seed": a.seed, "budget": B, "packed": str(data), "eta": a.eta,
              "proxy_steps": a.proxy_steps or B,
              "smoothing_online": a.smoothing_online, "n_domains": len(names),
              "tokens_per_step": TRAINING["per_device_train_batch_size"] * meta["block_size"],
              "domain_names": names, "rounds": doremi["rounds"], "weights": weights, "mains": mains}
    if a.no_compose:
        write_result(out / "result.json", result, started)
        return
    # the composition, on blocks from every source, with the 3-run weights
    cdata = packed(a.compose_packed)
    cmeta = read_meta(cdata)
    cblocks = load_blocks(cdata, "train")
    ceval = per_domain_subset(load_blocks(cdata, "validation"), EVAL_BLOCKS)
    mixture = dict(zip(names, weights))
    lfr = train("compose-lfr", cblocks, ceval, cmeta["domain_names"], args={"curriculum": "lfr"})
    compose = {
        "lfr": lfr,
        "lfr_over_doremi": train("compose-lfr-doremi", cblocks, ceval, cmeta["domain_names"],
                                 args={"curriculum": "lfr", "domain_weights": mixture}),
        "doremi_mixture": train("compose-doremi", cblocks, ceval, cmeta["domain_names"],
                                args={"max_steps": lfr["steps"], "domain_weights": weights}),
    }
    result.update({"compose_packed": str(cdata), "compose": compose})
    write_result(out / "result.json", result, started)


if __name__ == "__main__":
    main()
