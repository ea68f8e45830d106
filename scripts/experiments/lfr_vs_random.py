"""LFR vs random sampling at the same number of training tokens, on the seven English domains.

    python scripts/experiments/lfr_vs_random.py --variant lfr --seed 0
    python scripts/experiments/lfr_vs_random.py --variant random --seed 0
    python scripts/experiments/lfr_vs_random.py --variant lfr-once --seed 0 --packed en-cap64-spread \
        --plan scripts/experiments/plans/lfr_forgetting.yaml --plan-params '{"learn": 4, "cycles": 14, "reps": 5}' \
        --eval-every 25 --out runs/experiments-r2/forgetting-long      # round 2: where forgetting happens

LFR runs the bundled ``lfr`` plan (learn 1 epoch; focus on the 50 % hardest blocks; review; focus on the 30 % hardest,
``--reps`` times, each repetition re-deciding its set); ``lfr-once`` selects that set once and trains it for every
repetition (``reselect: false``, the third-party implementation's reading). ``random`` trains on uniformly shuffled
epochs for exactly as many optimizer steps as the plan has, with the same model init, LR schedule and evaluation points. Both record validation loss (overall and per domain)
every 50 steps; LFR also records every block's loss, from which its block fates are classified.
Writes ``runs/experiments/lfr/<variant>-seed<S>/result.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (BATCH, EVAL_BLOCKS, EVAL_EVERY, MODELS, RUNS, TRAINING, eval_history, merge_evals,  # noqa: E402
                    packed, setup, write_result)


def load_plan(plan: str, params: dict):
    from curricula.methods.lfr.plan import Plan

    return Plan.from_yaml(plan, **params) if plan.endswith(".yaml") else Plan.from_recipe(plan, **params)


def plan_steps(n_blocks: int, plan) -> int:
    """Optimizer steps of the LFR plan over ``n_blocks`` (each plan epoch is rounded up to whole batches)."""
    return sum(max(1, math.ceil(b / BATCH)) for b in plan.blocks_per_epoch(n_blocks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["lfr", "lfr-once", "random"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=2, help="repetitions of the last focus phase (the lfr plan)")
    ap.add_argument("--plan", default="lfr", help="a bundled plan name or a plan YAML file")
    ap.add_argument("--plan-params", type=json.loads, default=None,
                    help='the plan\'s parameters as JSON (default: {"reps": REPS})')
    ap.add_argument("--packed", default="en-cap512")
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--eval-every", type=int, default=EVAL_EVERY, help="optimizer steps between evaluations")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RUNS / "lfr"))
    a = ap.parse_args()
    setup(a.threads)
    started = time.time()

    from curricula.data.pack import load_blocks, read_meta
    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments
    from hf_trainer_ext.data import per_domain_subset
    from hf_trainer_ext.reference import model_for_data

    data = packed(a.packed)
    meta = read_meta(data)
    train = load_blocks(data, "train")
    evaluation = per_domain_subset(load_blocks(data, "validation"), EVAL_BLOCKS)
    params = dict(a.plan_params if a.plan_params is not None else {"reps": a.reps})
    if a.variant != "random":
        params["reselect"] = a.variant == "lfr"
    plan = load_plan(a.plan, params)
    steps = plan_steps(len(train), plan)
    out = Path(a.out) / f"{a.variant}-seed{a.seed}"
    kw = dict(TRAINING, output_dir=str(out), seed=a.seed, eval_strategy="steps", eval_steps=a.eval_every)
    if a.variant != "random":
        args = CurriculumTrainingArguments(curriculum=a.plan, curriculum_params=params, **kw)
    else:
        args = CurriculumTrainingArguments(max_steps=steps, **kw)  # block losses logged too: equal overhead
    model = model_for_data(meta, seed=a.seed, **MODELS[a.model])
    trainer = CurriculumTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                                domain_names=meta["domain_names"])
    trainer.train()
    if trainer.state.global_step % a.eval_every:
        trainer.evaluate()
    if trainer.state.global_step != steps:
        raise RuntimeError(f"{a.variant} ran {trainer.state.global_step} steps, the plan has {steps}")
    result = {"experiment": "lfr_vs_random", "variant": a.variant, "seed": a.seed, "reps": params.get("reps"),
              "plan": plan.to_dict(), "epoch_equivalents": sum(plan.blocks_per_epoch(len(train))) / len(train),
              "model": a.model, "model_config": MODELS[a.model],
              "packed": str(data), "n_blocks": len(train), "steps": steps, "tokens_per_step": BATCH * meta["block_size"],
              "domain_names": meta["domain_names"], "evals": merge_evals(eval_history(trainer.state.log_history)),
              "train_losses": [[h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h]}
    if a.variant != "random":
        from curricula.analysis import analyze_run

        summary = analyze_run(out)
        result["fates"] = summary["summary"]
        result["focus"] = summary.get("focus")
    write_result(out / "result.json", result, started)


if __name__ == "__main__":
    main()
