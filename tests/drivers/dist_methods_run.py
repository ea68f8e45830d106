"""Run by tests/integration/test_scale_out.py under torchrun (2 CPU processes, gloo): every method, under DDP or FSDP2.

argv: OUT BACKEND PACKED TOKENIZER TASKS CACHE REFERENCE [METHODS...]
BACKEND is ddp or fsdp (accelerate's FSDP2 plugin through TrainingArguments). For each method, rank 0 writes what it
trained (its micro-batch losses and block ids), the curriculum log, the DoReMi weights, the evaluation (per-domain
perplexity and a zero-shot task, on the sharded model) and a digest of the saved full weights.
"""

import hashlib
import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import LossTap  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages

from curricula.data.packed import PackedData  # noqa: E402
from curricula.methods import DoReMiOnlineConfig, GroupDROConfig, LFRConfig  # noqa: E402
from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments  # noqa: E402
from hf_trainer_ext.reference import model_for_data  # noqa: E402

out, backend, packed, tokenizer, tasks, cache, reference = sys.argv[1:8]
wanted = sys.argv[8:] or ["plain", "lfr", "mixture", "group_dro", "group_dro_live", "online", "continual"]
out = Path(out)
data = PackedData.load(packed)
PLAN = {"phases": [{"kind": "learn", "epochs": 1}, {"kind": "focus", "drop_percent": 50, "epochs": 1}]}
FSDP = {"fsdp": True, "fsdp_config": {"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["GPT2Block"]}} \
    if backend == "fsdp" else {}


def fsdp_on_cpu() -> None:
    """accelerate turns its FSDP plugin on only for accelerator process groups (MULTI_GPU, ...), never MULTI_CPU, so on
    this CPU machine TrainingArguments(fsdp=...) silently trains DDP. Present the gloo group as an accelerator one:
    FSDP2's fully_shard itself runs on CPU with gloo, which is what this test exercises (DTensor parameters, sharded
    optimizer state, collective forwards, gathered state dicts)."""
    if backend == "fsdp":
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType

        PartialState().distributed_type = DistributedType.MULTI_GPU
BASE = dict(per_device_train_batch_size=4, gradient_accumulation_steps=2, learning_rate=2e-3, report_to="none",
            save_strategy="no", use_cpu=True, disable_tqdm=True, logging_steps=2, seed=0, eval_tasks=tasks,
            eval_tokenizer=tokenizer, per_device_eval_batch_size=8, ddp_find_unused_parameters=False, **FSDP)
METHODS = {
    "plain": ({"max_steps": 4}, {}),
    "lfr": ({}, {"curriculum": LFRConfig.from_dict(PLAN)}),
    "mixture": ({"max_steps": 4, "domain_weights": "[0.7, 0.3]"}, {}),
    "group_dro": ({"max_steps": 4}, {"curriculum": GroupDROConfig(), "reference_losses": cache}),
    "group_dro_live": ({"max_steps": 4}, {"curriculum": GroupDROConfig(), "reference_model": reference}),
    "online": ({"max_steps": 4}, {"curriculum": DoReMiOnlineConfig(smoothing=0.1), "reference_losses": cache}),
}


def digest(folder: Path) -> str:
    from safetensors.numpy import load_file

    w = load_file(str(folder / "model.safetensors"))
    return hashlib.sha256(b"".join(w[k].tobytes() for k in sorted(w))).hexdigest()[:16]


from curricula.methods.online import read_weights_history  # noqa: E402

results = {}
for name in [m for m in wanted if m in METHODS]:
    extra_args, extra = METHODS[name]
    args = CurriculumTrainingArguments(output_dir=str(out / name), **BASE, **extra_args)
    fsdp_on_cpu()
    tr = CurriculumTrainer(model=model_for_data(data.meta, seed=0, n_layer=2, n_embd=32, n_head=2), args=args,
                           packed=data, eval_dataset=data.validation(16), **extra)
    tap = LossTap(tr)
    tr.train()
    metrics = tr.evaluate()
    tr.save_model()
    cur = tr.curriculum
    log_dir = out / name / "curriculum"
    results[name] = {
        "world": tr.args.world_size, "losses": tap.losses, "batches": tap.batches,
        "sharded": any(type(p).__name__ == "DTensor" for p in tr.model.parameters()),
        "eval": {k: v for k, v in metrics.items() if "ppl" in k or "task" in k or k == "eval_loss"},
        "history": (read_weights_history(out / name / "doremi" / "weights_history.parquet")["weights"].tolist()
                    if (out / name / "doremi" / "weights_history.parquet").is_file() else None),
        "log": sorted(p.name for p in log_dir.glob("epoch-*.parquet")) if log_dir.is_dir() else [],
        "weights": digest(out / name) if tr.args.process_index == 0 else None,
    }
    if name == "lfr" and tr.args.process_index == 0:
        import pyarrow.parquet as pq

        results[name]["records"] = {p: pq.read_table(log_dir / p).to_pydict() for p in results[name]["log"]}
    del tr

if "continual" in wanted:
    from curricula.methods import ContinualRecipe
    from hf_trainer_ext.pipelines.continual import run_continual

    training = {k: v for k, v in BASE.items() if k not in ("learning_rate", "eval_tasks", "eval_tokenizer")}
    recipe = ContinualRecipe.from_dict({
        "model": {"n_layer": 2, "n_embd": 32, "n_head": 2}, "eval_every": 2, "max_eval_blocks": 8, "training": training,
        "stages": [{"name": "a", "packed": packed, "steps": 4},
                   {"name": "b", "packed": packed, "steps": 4, "replay": 0.25}]})
    fsdp_on_cpu()
    import hf_trainer_ext.arguments as arguments_mod

    real_post_init = arguments_mod.CurriculumTrainingArguments.__post_init__

    def post_init(self):  # every stage builds its own arguments: present the group as an accelerator one each time
        real_post_init(self)
        fsdp_on_cpu()

    arguments_mod.CurriculumTrainingArguments.__post_init__ = post_init
    res = run_continual(recipe, out / "continual")
    results["continual"] = {"after": [s["after"] for s in res["stages"] + res["last_stage_variants"]],
                            "weights": digest(out / "continual" / "b-replay25") if len(sys.argv) else None}

from accelerate import PartialState  # noqa: E402

if PartialState().is_main_process:
    (out / f"results-{backend}.json").write_text(json.dumps(results))

from hf_trainer_ext.distributed import shutdown_distributed  # noqa: E402

shutdown_distributed()
