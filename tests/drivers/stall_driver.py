"""Run by tests/hf_trainer_ext/test_watchdog.py under `torchrun --nproc_per_node 2` (CPU processes, gloo): a tiny GPT-2
trained by CurriculumTrainer (a uniform mixture) with a checkpoint every SAVE_STEPS steps; rank 1 stops itself with
SIGSTOP at the end of step STOP_AT, and rank 0's stall watchdog must end it.

argv: OUT STALL_TIMEOUT DDP_TIMEOUT STOP_AT SAVE_STEPS
Each rank writes OUT/rank<r>.json when its trainer is built: its pid and the timeouts of the gloo group and of the
rendezvous store (what --ddp_timeout must have set). Rank 1 writes OUT/stopped.json (pid, step, time) right before it
stops. Self-contained (no tests/support.py): the data and the model are built here.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments
from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback

out, stall, ddp_timeout, stop_at, save_steps = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])


def blocks(n=96, t=32, v=128):
    import datasets

    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict({"block_id": np.arange(n), "domain_id": np.repeat([0, 1, 2], n // 3),
                                       "input_ids": rng.integers(0, v, (n, t)).astype(np.int32)})


class StopRank1(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if args.process_index == 1 and state.global_step == stop_at:
            (out / "stopped.json").write_text(json.dumps({"pid": os.getpid(), "step": state.global_step,
                                                          "time": time.time()}))
            print(f"rank 1 (pid {os.getpid()}) stops itself after step {stop_at}", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)


torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=128, n_positions=32, bos_token_id=0,
                                   eos_token_id=0))
args = CurriculumTrainingArguments(
    output_dir=str(out / "run"), per_device_train_batch_size=4, max_steps=10_000, domain_weights="uniform",
    save_strategy="steps", save_steps=save_steps, use_cpu=True, report_to="none", disable_tqdm=True,
    logging_steps=10_000, seed=0, ddp_find_unused_parameters=False, stall_timeout=stall, ddp_timeout=ddp_timeout)
tr = CurriculumTrainer(model=model, args=args, train_dataset=blocks(), callbacks=[StopRank1()])
group = torch.distributed.distributed_c10d._get_default_group()
(out / f"rank{args.process_index}.json").write_text(json.dumps({
    "pid": os.getpid(), "world": args.world_size,
    "gloo_timeout_s": group._get_backend(torch.device("cpu")).options._timeout.total_seconds(),
    "store_timeout_s": torch.distributed.distributed_c10d._get_default_store().timeout.total_seconds()}))
tr.train()
print("training ended: the stopped rank was never noticed", flush=True)
sys.exit(3)
