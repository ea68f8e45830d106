"""Run by tests/integration/test_distributed.py under `torchrun --nproc_per_node 2`: a replay stage's data loader on 2 processes.

argv: OUT PACKED_EN PACKED_DE. Each rank writes the sampler's full stream and the block rows its loader yields.
"""

import json
import sys
from pathlib import Path

from hf_trainer_ext.arguments import CurriculumTrainingArguments  # noqa: E402
from curricula.methods import ReplayConfig  # noqa: E402
from curricula.methods import ContinualRecipe  # noqa: E402
from hf_trainer_ext import CurriculumTrainer  # noqa: E402
from hf_trainer_ext.pipelines.continual import _load_stages, _stage_data  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import tiny_gpt2  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages

out, en, de = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
recipe = ContinualRecipe.from_dict({"stages": [{"name": "en", "packed": en, "steps": 3},
                                               {"name": "de", "packed": de, "steps": 10, "replay": 0.25}]})
data = _load_stages(recipe)
combined, new_pool, replay_pool = _stage_data(data, 1, [None, None], seen_only=False)
args = CurriculumTrainingArguments(output_dir=str(out), max_steps=10, per_device_train_batch_size=4,
                                   gradient_accumulation_steps=2, report_to="none", use_cpu=True, seed=0)
tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=combined,
                       curriculum=ReplayConfig(replay=0.25, new_rows=len(new_pool), seed=1))
rows = [b["block_id"].tolist() for b in tr.get_train_dataloader()]
(out / f"rank{tr.args.process_index}.json").write_text(json.dumps(
    {"stream": list(iter(tr.curriculum_sampler())), "rows": rows, "n_new": len(new_pool), "world": tr.args.world_size}))

from hf_trainer_ext.distributed import shutdown_distributed  # noqa: E402

# the scripts' results are written; exit the way scripts/train.py does: drop the trainer, then free the process group
# (joining gloo's threads) before interpreter shutdown, where a live gloo thread could abort the exit (SIGABRT)
del tr, args
shutdown_distributed()
