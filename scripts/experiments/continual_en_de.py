"""Continual pretraining, English mix (D0) -> German (D1): replay 0 / 5 / 25 %, re-warm + re-decay vs an infinite
schedule, and a from-scratch run on the union as the reference.

    python scripts/experiments/continual_en_de.py --variant rewarm --seed 0     # D0, then D1 with replay 0/5/25 %
    python scripts/experiments/continual_en_de.py --variant infinite --seed 0   # one infinite schedule, replay 0/5 %
    python scripts/experiments/continual_en_de.py --variant union --seed 0      # from scratch on D0 ∪ D1

``rewarm``: each stage warms up linearly (1 %) to 2e-3 and decays by cosine to 0.1x (Ibrahim et al.'s re-warm +
re-decay). ``infinite``: one schedule over both stages (warmup, cosine cooldown to a constant 6e-4 over 200 steps,
constant, and an exponential anneal to 2e-4 in the last 100 steps of D1), so D1 starts without a re-warm.
``union``: the same 400 + 300 steps from scratch with 4/7 of every batch from D0 and 3/7 from D1 (the same tokens of
each dataset, all at once). The D1 variants branch from the same end-of-D0 weights and AdamW state.
Writes ``runs/experiments/continual/<variant>-seed<S>/result.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BATCH, EVAL_BLOCKS, EVAL_EVERY, MODEL, RUNS, packed, setup, write_result  # noqa: E402



def infinite_schedule(d0_steps: int, d1_steps: int) -> dict:
    total = d0_steps + d1_steps
    return {"constant_lr": 6e-4, "min_lr": 2e-4, "warmup_steps": max(1, total // 100),
            "cooldown_steps": max(1, total * 2 // 7), "cooldown": "cosine", "anneal": "exponential",
            "anneal_steps": max(1, d1_steps // 3), "anneal_start": total - max(1, d1_steps // 3)}


def recipe_for(variant: str, seed: int, d0_steps: int = 400, d1_steps: int = 300):
    from curricula.methods import ContinualRecipe

    return ContinualRecipe.from_dict({
        "stages": [{"name": "en", "packed": str(packed("en-cap2000")), "steps": d0_steps},
                   {"name": "de", "packed": str(packed("de-cap5000")), "steps": d1_steps, "replay_seen_only": True}],
        "variants": {"replay": [0.0, 0.05] if variant == "infinite" else [0.0, 0.05, 0.25]},
        "model": MODEL, "optimizer": "keep", "max_lr": 2e-3,
        "infinite": infinite_schedule(d0_steps, d1_steps) if variant == "infinite" else None,
        "eval_every": EVAL_EVERY, "max_eval_blocks": EVAL_BLOCKS,
        "training": {"per_device_train_batch_size": BATCH, "per_device_eval_batch_size": 64, "logging_steps": 25,
                     "seed": seed, "disable_tqdm": True},
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["rewarm", "infinite", "union"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--d0-steps", type=int, default=400)
    ap.add_argument("--d1-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RUNS / "continual"))
    a = ap.parse_args()
    setup(a.threads)
    started = time.time()

    from hf_trainer_ext.pipelines.continual import run_continual, run_union

    recipe = recipe_for(a.variant, a.seed, a.d0_steps, a.d1_steps)
    out = Path(a.out) / f"{a.variant}-seed{a.seed}"
    if a.variant == "union":
        result = {"union": run_union(recipe, out)}
    else:
        result = run_continual(recipe, out)
        result.pop("recipe", None)
    result.update({"experiment": "continual_en_de", "variant": a.variant, "seed": a.seed,
                   "d0_steps": a.d0_steps, "d1_steps": a.d1_steps, "tokens_per_step": BATCH * 128,
                   "infinite": recipe.infinite})
    write_result(out / "result.json", result, started)


if __name__ == "__main__":
    main()
