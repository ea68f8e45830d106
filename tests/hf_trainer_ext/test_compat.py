"""What hf_trainer_ext/compat.py relies on in transformers.Trainer: fails when a release changes it."""

import inspect

import numpy as np
from transformers import Trainer, TrainingArguments

from hf_trainer_ext import CurriculumSampler, CurriculumTrainer
from hf_trainer_ext.compat import MAX_STEPS, NUM_TRAIN_EPOCHS, NUM_TRAIN_SAMPLES, TOTAL_TRAIN_BATCH_SIZE, TrainerCompat

SIGNATURES = {
    "_set_signature_columns_if_needed": ["self"],
    "_get_train_sampler": ["self", "train_dataset"],
    "set_initial_training_values": ["self", "args", "dataloader"],
    "_init_training_state": ["self", "max_steps", "num_update_steps_per_epoch", "num_train_epochs",
                             "resume_from_checkpoint", "trial"],
    "_save_checkpoint": ["self", "model", "trial"],
    "_push_from_checkpoint": ["self", "checkpoint_folder"],
    "get_resumed_dataloader": ["self", "dataloader", "num_batches"],
}


def test_every_override_is_listed_and_trainer_still_has_it_with_the_same_parameters():
    overridden = {n for n, v in vars(TrainerCompat).items() if callable(v) and not n.startswith("__")}
    assert overridden == set(SIGNATURES)
    for name, params in SIGNATURES.items():
        assert list(inspect.signature(getattr(Trainer, name)).parameters) == params, name
    # no other private method of Trainer is overridden anywhere in the trainer
    private = {n for n in vars(CurriculumTrainer) if n.startswith("_") and not n.startswith("__")
               and hasattr(Trainer, n)}
    assert private == set(), private


def test_set_initial_training_values_returns_the_tuple_compat_indexes(tmp_path, blocks, tiny_gpt2):
    ds = blocks().map(lambda r: {"labels": r["input_ids"]}).remove_columns(["block_id", "domain_id"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=5, per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, report_to="none", use_cpu=True)
    tr = Trainer(model=tiny_gpt2(), args=args, train_dataset=ds)
    values = tr.set_initial_training_values(args, tr.get_train_dataloader())
    assert len(values) == 7
    assert values[MAX_STEPS] == 5 and values[TOTAL_TRAIN_BATCH_SIZE] == 8
    assert values[NUM_TRAIN_SAMPLES] == 5 * 8 and values[NUM_TRAIN_EPOCHS] == 1


def test_init_training_state_returns_epochs_and_steps_in_epoch():
    src = inspect.getsource(Trainer._init_training_state)
    assert "return epochs_trained, steps_trained_in_current_epoch" in src


def test_save_checkpoint_pushes_then_rotates_by_save_total_limit():
    src = inspect.getsource(Trainer._save_checkpoint)
    push, rotate = src.find("self._push_from_checkpoint("), src.find("rotate_checkpoints(")
    assert 0 < push < rotate, "Trainer no longer pushes before it rotates inside _save_checkpoint"
    assert "save_total_limit=self.args.save_total_limit" in src[rotate:]


def test_the_train_dataloader_iterates_our_sampler(tmp_path, blocks, targs, tiny_gpt2):
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=3, domain_weights="uniform"),
                           train_dataset=blocks())
    dl = tr.get_train_dataloader()
    found, obj = False, dl
    for _ in range(6):  # DataLoaderShard -> batch_sampler (BatchSamplerShard) -> batch_sampler -> sampler
        obj = getattr(obj, "batch_sampler", None) or getattr(obj, "sampler", None)
        found |= isinstance(obj, CurriculumSampler) or isinstance(getattr(obj, "sampler", None), CurriculumSampler)
        if obj is None:
            break
    assert found
    ids = [int(x) for b in dl for x in b["block_id"]]
    assert ids == [int(x) for x in np.asarray(list(iter(tr.curriculum_sampler())))]


def test_signature_columns_keep_the_block_columns(tmp_path, blocks, targs, tiny_gpt2):
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=1), train_dataset=blocks())
    tr._set_signature_columns_if_needed()
    assert {"block_id", "domain_id", "input_ids"} <= set(tr._signature_columns)


def test_the_running_loss_sum_reads_what_trainer_accumulates(tmp_path, blocks, targs, tiny_gpt2):
    """running_loss_sum reads Trainer's _total_loss_scalar + _tr_loss (no silent default): at the end of a run it
    equals the mean training loss Trainer reports times the steps."""
    from transformers import TrainerCallback

    from hf_trainer_ext.compat import running_loss_sum

    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=4, logging_steps=3), train_dataset=blocks())
    seen = []

    class Tap(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(running_loss_sum(tr))

    tr.add_callback(Tap())
    out = tr.train()
    assert len(seen) == 4 and all(b > a for a, b in zip(seen, seen[1:]))
    assert abs(seen[-1] - out.training_loss * 4) < 1e-4
