"""Run by tests/integration/test_distributed.py and test_scale_out.py under `torchrun --nproc_per_node 2`: LFR on 2 CPU processes (gloo).

Each rank writes what it trained (block ids per optimizer step) and, after every phase boundary, its eligible set and
which index-table columns it holds (the node's deciding process alone holds the losses).
"""

import json
import os
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import LossTap, blocks, plan_file, targs, tiny_gpt2  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages

from hf_trainer_ext import CurriculumTrainer  # noqa: E402

out = Path(sys.argv[1])
rank_dir = out / f"rank-{os.environ.get('RANK', '0')}"  # each process writes its own copy: no torn reads
rank_dir.mkdir(parents=True, exist_ok=True)
plan = plan_file(rank_dir, "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 40, epochs: 2}, {kind: review, epochs: 1}]") \
    if sys.argv[2:] == [] else sys.argv[2]
args = targs(out / "run", curriculum=plan, per_device_train_batch_size=4, gradient_accumulation_steps=2,
             ddp_find_unused_parameters=False)
tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks())
rank = tr.args.process_index
tap = LossTap(tr)
steps = []
orig = tr.training_step


def training_step(model, inputs, num_items_in_batch=None):
    steps.append(tr.state.global_step + 1)
    return orig(model, inputs, num_items_in_batch)


tr.training_step = training_step
tables, mapped = [], []
finish = tr.finish_epoch


def finish_and_record():
    finish()
    table = tr.curriculum.table
    built = sorted(dict.keys(table._c))  # the columns this process holds (a lazy column is built on first read)
    tables.append({"eligible": table.eligible_ids().tolist(), "built": built,
                   "loss": [float(x) for x in table._c["loss"]] if "loss" in built else None})
    mapped.append(bool(dict.get(table._c, "loss") is None))  # a follower never builds the loss column


tr.finish_epoch = finish_and_record
tr.train()
(out / f"rank{rank}.json").write_text(json.dumps({
    "world": tr.args.world_size, "steps": steps, "batches": tap.batches, "tables": tables,
    "global_step": tr.state.global_step, "mapped": mapped,
}))

from hf_trainer_ext.distributed import shutdown_distributed  # noqa: E402

# the scripts' results are written; exit the way scripts/train.py does: drop the trainer, then free the process group
# (joining gloo's threads) before interpreter shutdown, where a live gloo thread could abort the exit (SIGABRT)
del tr, tap, orig, finish, training_step, finish_and_record, args
shutdown_distributed()
