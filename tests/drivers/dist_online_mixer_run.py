"""Run by tests/curricula/methods/{odm,ado,aioli}/test_method.py under `torchrun --nproc_per_node 2`: one online mixer
(ODM, ADO or Aioli, tiny settings) on ``blocks()`` on 2 CPU processes, saving a checkpoint every 4 steps.

argv: OUT METHOD [MAX_STEPS [RESUME_CHECKPOINT]]. Each rank writes ``<METHOD>-rank<r>[-resumed].json``: the
curriculum's whole state after every step (as JSON: arrays as lists, so equal JSON means bit-identical floats) and
every global batch it drew.
"""

import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import blocks, targs, tiny_gpt2  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages

import numpy as np  # noqa: E402

from curricula.methods import ADOConfig, AioliConfig, ODMConfig  # noqa: E402
from hf_trainer_ext import CurriculumTrainer  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

CONFIGS = {  # small enough that every mechanism runs within 8 steps
    "odm": lambda: ODMConfig(warmup_steps=2),
    "ado": lambda: ADOConfig(ignore_steps=0, start_step=4, update_interval=4, savgol_window=5, point_stride=1,
                             max_fit_points=6, fit_starts=8, fit_lag=1),
    "aioli": lambda: AioliConfig(eta=1.0, update_steps=6, lp_rounds=1, lp_steps=1, one_hot_factor=0.625),
}

out, method = Path(sys.argv[1]), sys.argv[2]
max_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 8
resume = sys.argv[4] if len(sys.argv) > 4 else None
args = targs(out / method, max_steps=max_steps, per_device_train_batch_size=4, gradient_accumulation_steps=2,
             per_device_eval_batch_size=4, ddp_find_unused_parameters=False, save_strategy="steps", save_steps=4)
tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=args, train_dataset=blocks(),
                       eval_dataset=blocks(24, seed=1) if method == "aioli" else None, curriculum=CONFIGS[method]())
history, stream = [], []


def jsonable(state):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in sorted(state.items())}


class States(TrainerCallback):  # after the curriculum's own callback: the state this rank holds after each step
    def on_step_end(self, args, state, control, **kwargs):
        history.append({"step": state.global_step, "state": jsonable(tr.curriculum.state_dict())})


def drawn(batches):  # every global batch the sampler draws from the curriculum on this rank
    def tap(epoch, start=0):
        for batch in batches(epoch, start):
            stream.append(batch.tolist())
            yield batch
    return tap


tr.add_callback(States())
tr.curriculum.batches = drawn(tr.curriculum.batches)
tr.train(resume_from_checkpoint=resume)
rank = tr.args.process_index
blocks_scored = tr.probe.blocks_scored if tr.probe is not None else 0
(out / f"{method}-rank{rank}{'-resumed' if resume else ''}.json").write_text(json.dumps(
    {"history": history, "stream": stream, "world": tr.args.world_size, "blocks_scored": blocks_scored,
     "final": tr.curriculum.result()["weights"]}))

from hf_trainer_ext.distributed import shutdown_distributed  # noqa: E402

# the results are written; exit the way scripts/train.py does: drop the trainer, then free the process group
del tr, args
shutdown_distributed()
