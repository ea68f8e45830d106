"""DoReMi vs uniform vs token-proportional domain weights at equal steps, on the seven English domains.

    python scripts/experiments/doremi_vs_baselines.py --seed 0

Two DoReMi rounds (``curricula.doremi``: round 0's reference on uniform weights, round 1's on round 0's weights; each
proxy trained with Group DRO against its reference's cached losses), then three main models from the same init, on
the same number of steps, with the uniform, token-proportional (the corpus' natural token shares) and DoReMi
weights; each evaluated every 50 steps (per-domain, average and worst-case perplexity).
Writes ``runs/experiments/doremi/seed<S>/result.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (EVAL_BLOCKS, EVAL_EVERY, MODEL, RUNS, TRAINING, eval_history, merge_evals, packed,  # noqa: E402
                    setup, write_result)


def natural_token_shares(meta: dict) -> list[float]:
    tokens = [meta["splits"]["train"]["domains"][n]["tokens"] for n in meta["domain_names"]]
    return [t / sum(tokens) for t in tokens]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=400, help="steps of every reference, proxy and main run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--packed", default="en-cap2000")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RUNS / "doremi"))
    a = ap.parse_args()
    setup(a.threads)
    started = time.time()

    from curricula.data.pack import load_blocks, read_meta
    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments
    from hf_trainer_ext.data import per_domain_subset
    from curricula.methods import DoReMiRecipe, baseline_weights
    from hf_trainer_ext.pipelines.doremi import run_doremi
    from hf_trainer_ext.reference import model_for_data

    data = packed(a.packed)
    meta = read_meta(data)
    out = Path(a.out) / f"seed{a.seed}"
    training = {k: v for k, v in TRAINING.items() if k != "per_device_eval_batch_size"}
    recipe = DoReMiRecipe(baseline_weights="uniform", rounds=a.rounds, stop_l1=0.0, reference="cached",
                          reference_steps=a.steps, proxy_steps=a.steps, main_steps=a.steps, run_main=False,
                          model=MODEL, training={**training, "seed": a.seed}, max_eval_blocks=EVAL_BLOCKS)
    doremi = run_doremi(recipe, data, out / "doremi")

    train = load_blocks(data, "train")
    evaluation = per_domain_subset(load_blocks(data, "validation"), EVAL_BLOCKS)
    weights = {"uniform": baseline_weights("uniform", meta).tolist(),
               # the source's natural token shares (before any per-domain cap), as these experiments ran
               "token_proportional": natural_token_shares(meta),
               "doremi": doremi["final_weights"]}
    mains = {}
    for name, w in weights.items():
        args = CurriculumTrainingArguments(**TRAINING, output_dir=str(out / f"main-{name}"), max_steps=a.steps,
                                           seed=a.seed, eval_strategy="steps", eval_steps=EVAL_EVERY,
                                           domain_weights=json.dumps(w))
        model = model_for_data(meta, seed=10_000 * a.seed + 5000, **MODEL)  # one init for the three
        trainer = CurriculumTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                                    domain_names=meta["domain_names"])
        trainer.train()
        if trainer.state.global_step % EVAL_EVERY:
            trainer.evaluate()
        mains[name] = {"weights": w, "evals": merge_evals(eval_history(trainer.state.log_history))}
    result = {"experiment": "doremi_vs_baselines", "seed": a.seed, "steps": a.steps, "packed": str(data),
              "tokens_per_step": TRAINING["per_device_train_batch_size"] * meta["block_size"],
              "domain_names": meta["domain_names"], "rounds": doremi["rounds"], "mains": mains}
    write_result(out / "result.json", result, started)


if __name__ == "__main__":
    main()
