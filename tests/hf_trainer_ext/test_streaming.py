"""Streaming mixtures: per-domain streams read with load_dataset(..., streaming=True), packed on the fly, drawn with
the curriculum's exact per-domain counts, killed at a checkpoint and resumed exactly; methods that need every block's
identity refuse a stream with the fix."""

import json
import random

import numpy as np
import pytest

DOMAINS = ("code", "prose", "legal")


@pytest.fixture(scope="module")
def stream_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("streams")
    rng = random.Random(0)
    for d in DOMAINS:
        with open(root / f"{d}.jsonl", "w") as f:
            for _ in range(200):  # token rows of many lengths: packed into 32-token blocks on the fly
                f.write(json.dumps({"input_ids": [rng.randrange(5, 250) for _ in range(rng.choice([7, 30, 90]))],
                                    "domain": d}) + "\n")
    return root


def _streams(root, one=False):
    from datasets import interleave_datasets, load_dataset

    per = {d: load_dataset("json", data_files=str(root / f"{d}.jsonl"), split="train", streaming=True) for d in DOMAINS}
    return interleave_datasets(list(per.values())) if one else per


def _trainer(root, out, loss_tap, stop=None, one=False, **kw):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback

    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=256, n_positions=32,
                                       bos_token_id=0, eos_token_id=0))
    args = CurriculumTrainingArguments(
        output_dir=str(out), max_steps=12, per_device_train_batch_size=4, domain_weights="[0.5, 0.3, 0.2]",
        report_to="none", use_cpu=True, save_strategy="steps", save_steps=4, logging_steps=1, disable_tqdm=True,
        packing=True, packing_block_size=32, seed=0, **({"domain_column": "domain"} if one else {}), **kw)
    tr = CurriculumTrainer(model=model, args=args, train_dataset=_streams(root, one), domain_names=list(DOMAINS))

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **k):
            control.should_training_stop = stop is not None and state.global_step == stop

    tr.add_callback(Stop())
    return tr, loss_tap(tr)


def test_a_stream_killed_at_a_checkpoint_resumes_exactly(stream_files, tmp_path, loss_tap):
    full, full_tap = _trainer(stream_files, tmp_path / "full", loss_tap)
    full.train()
    part, part_tap = _trainer(stream_files, tmp_path / "part", loss_tap, stop=6)
    part.train()
    rest, rest_tap = _trainer(stream_files, tmp_path / "part", loss_tap)
    rest.train(resume_from_checkpoint=str(tmp_path / "part" / "checkpoint-4"))
    assert len(full_tap.batches) == 12
    assert rest_tap.batches == full_tap.batches[4:]  # the streams continued where checkpoint-4 left them
    np.testing.assert_allclose(rest_tap.losses, full_tap.losses[4:], rtol=0, atol=1e-6)
    saved = json.loads((tmp_path / "part" / "checkpoint-4" / "curriculum" / "streams.json").read_text())
    assert saved["batch"] == 4 and len(saved["streams"]) == 3


def test_each_batch_has_the_exact_per_domain_counts(stream_files, tmp_path, loss_tap):
    tr, tap = _trainer(stream_files, tmp_path / "run", loss_tap)
    seen = []
    real = tr.compute_loss

    def spy(model, inputs, *a, **k):
        seen.append(np.bincount(inputs["domain_id"].numpy(), minlength=3))
        return real(model, inputs, *a, **k)

    tr.compute_loss = spy
    tr.train()
    totals = np.sum(seen, axis=0)
    assert totals.sum() == 48 and all(abs(totals - 48 * np.array([0.5, 0.3, 0.2])) < 1)  # exact counts per batch
    log = [h for h in tr.state.log_history if "train_ppl/code" in h]
    assert log, "per-domain training perplexity is logged for streams too"


def test_one_stream_with_a_domain_column(stream_files, tmp_path, loss_tap):
    tr, tap = _trainer(stream_files, tmp_path / "one", loss_tap, one=True)
    tr.train()
    assert tr.state.global_step == 12


def test_methods_that_need_block_identity_refuse_a_stream_with_the_fix(stream_files, tmp_path, loss_tap):
    from transformers import GPT2Config, GPT2LMHeadModel

    from curricula.errors import ConfigError
    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments

    args = CurriculumTrainingArguments(output_dir=str(tmp_path / "lfr"), curriculum="lfr", use_cpu=True,
                                       report_to="none", packing=True, packing_block_size=32)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=256, n_positions=32))
    with pytest.raises(ConfigError, match="needs every block's loss, which a streamed corpus does not have.*curricula "
                                          "pack"):
        CurriculumTrainer(model=model, args=args, train_dataset=_streams(stream_files), domain_names=list(DOMAINS))
    with pytest.raises(ConfigError, match="dataloader_num_workers=0"):
        _trainer(stream_files, tmp_path / "workers", loss_tap, dataloader_num_workers=2)
