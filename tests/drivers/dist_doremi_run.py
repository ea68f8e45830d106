"""Run by tests/integration/test_distributed.py under `torchrun --nproc_per_node 2`: a DoReMi proxy (method group_dro) on 2 CPU processes.

argv: OUT CACHE_DIR [MAX_STEPS [RESUME_CHECKPOINT]]. Each rank writes the domain weights it held after every step.
With DOREMI_METHOD=online the run is the one-run DoReMi (doremi_online) instead of the proxy; each rank also writes
the full sampling stream it replays from those weights.
"""

import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import blocks, targs, tiny_gpt2  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages

import os  # noqa: E402

from curricula.methods import DoReMiOnlineConfig, GroupDROConfig  # noqa: E402
from hf_trainer_ext import CurriculumTrainer  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

out, cache = Path(sys.argv[1]), sys.argv[2]
max_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 8
resume = sys.argv[4] if len(sys.argv) > 4 else None
online = os.environ.get("DOREMI_METHOD") == "online"
method = DoReMiOnlineConfig(smoothing=0.1) if online else GroupDROConfig()
args = targs(out / ("online" if online else "proxy"), max_steps=max_steps, per_device_train_batch_size=4,
             gradient_accumulation_steps=2, ddp_find_unused_parameters=False, save_strategy="steps", save_steps=4)
tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=args, train_dataset=blocks(), reference_losses=cache, curriculum=method,
                       tokenizer_identity={"name": "synthetic", "vocab_sha256": "0" * 64})
history, stream = [], []


class Weights(TrainerCallback):  # after the curriculum's own callback: the weights this rank holds after each step
    def on_step_end(self, args, state, control, **kwargs):
        dro = tr.curriculum.dro
        history.append({"step": state.global_step, "weights": dro.weights.tolist(), "average": dro.average.tolist(),
                        "excess": dro.excess.tolist()})


def drawn(batches):  # every global batch the sampler draws from the curriculum on this rank
    def tap(epoch, start=0):
        for batch in batches(epoch, start):
            stream.append(batch.tolist())
            yield batch
    return tap


tr.add_callback(Weights())
tr.curriculum.batches = drawn(tr.curriculum.batches)
tr.train(resume_from_checkpoint=resume)
rank = tr.args.process_index
(out / f"weights-rank{rank}{'-online' if online else ''}{'-resumed' if resume else ''}.json").write_text(json.dumps(
    {"history": history, "average": tr.curriculum.dro.average.tolist(), "world": tr.args.world_size,
     "stream": stream if online else None}))

from hf_trainer_ext.distributed import shutdown_distributed  # noqa: E402

# the scripts' results are written; exit the way scripts/train.py does: drop the trainer, then free the process group
# (joining gloo's threads) before interpreter shutdown, where a live gloo thread could abort the exit (SIGABRT)
del tr, args
shutdown_distributed()
