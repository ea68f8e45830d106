"""``with_curriculum(SFTTrainer)`` (``hf_trainer_ext/trl.py``): TRL's SFTTrainer prepares its dataset (tokenizes the
text, builds labels), the curriculum orders the prepared examples: an LFR plan, a domain mixture with exact
per-batch counts and an exact resume, completion-only labels honoured by the curriculum's loss (equal to
SFTTrainer's own), domain-pure blocks packed before the trainer, and what is refused, with the fix."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("trl")

import datasets  # noqa: E402
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, TrainerCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from curricula.errors import ConfigError  # noqa: E402
from curricula.logs import read_curriculum_log  # noqa: E402
from curricula.methods import MixtureConfig  # noqa: E402
from hf_trainer_ext import CurriculumTrainingArguments, with_curriculum  # noqa: E402
from hf_trainer_ext.data import CurriculumDataError  # noqa: E402
from hf_trainer_ext.trl import CurriculumSFTConfig  # noqa: E402

CurriculumSFTTrainer = with_curriculum(SFTTrainer)
PLAN = "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 1}]"
WEIGHTS = [0.5, 0.25, 0.25]  # code, legal, prose: 8, 4, 4 of every global batch of 16


@pytest.fixture(scope="module")
def sft(clm_corpus):
    """(tokenizer, dataset): 120 documents (text; domain_id: code, legal, prose) and the corpus's 300-token BPE."""
    tok = AutoTokenizer.from_pretrained(str(clm_corpus / "bpe"))
    rows = [json.loads(line) for line in (clm_corpus / "docs.jsonl").read_text().splitlines()]
    ds = datasets.Dataset.from_list([{"text": r["text"], "domain_id": r["domain"]} for r in rows])
    return tok, ds.class_encode_column("domain_id")


def model_for(tok, seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_layer=2, n_embd=32, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def config(out, cls=CurriculumSFTConfig, **kw):
    base = dict(output_dir=str(out), max_length=64, per_device_train_batch_size=8, gradient_accumulation_steps=2,
                learning_rate=1e-3, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True,
                logging_steps=2, seed=0, bf16=False, activation_checkpointing=False)
    return cls(**{**base, **kw})


class BlockTap:
    """The block ids and the backpropagated loss of every micro-batch the trainer trains."""

    def __init__(self, trainer):
        self.batches, self.losses = [], []
        step = trainer.training_step

        def training_step(model, inputs, num_items_in_batch=None):
            self.batches.append(inputs["block_id"].tolist())
            loss = step(model, inputs, num_items_in_batch)
            self.losses.append(float(loss))
            return loss

        trainer.training_step = training_step


def test_lfr_plan_orders_the_sft_examples(tmp_path, sft, plan_file):
    tok, ds = sft
    args = config(tmp_path / "run", curriculum=plan_file(tmp_path, PLAN), eval_strategy="epoch",
                  per_device_eval_batch_size=16)
    tr = CurriculumSFTTrainer(model=model_for(tok), args=args, train_dataset=ds, processing_class=tok,
                              eval_dataset=ds.shuffle(seed=1).select(range(30)))
    assert tr.domain_names == ["code", "legal", "prose"]  # from the domain_id ClassLabel, kept through SFT's map
    lengths = {len(ids) for ids in tr.train_dataset.ds["input_ids"]}
    assert len(lengths) > 1 and max(lengths) == 64  # SFT's examples, truncated to max_length, of different lengths
    tr.train()
    log = read_curriculum_log(tmp_path / "run").to_pandas()
    learn, focus = log[log.epoch == 0], log[log.epoch == 1]
    assert sorted(learn.block_id) == list(range(len(ds)))  # every example once
    assert len(focus) == len(ds) // 2  # the focus epoch trained half of them
    hardest = set(learn.sort_values(["loss", "block_id"], ascending=[False, True]).block_id.iloc[: len(ds) // 2])
    assert set(focus.block_id) == hardest  # the examples with the highest loss of the learn epoch
    assert tr.state.global_step == sum(tr.curriculum.epoch_steps()) == 8 + 4
    logged = [k for entry in tr.state.log_history for k in entry]
    assert {"train_ppl/code", "train_ppl/legal", "train_ppl/prose"} <= set(logged)
    assert {"eval_ppl/code", "eval_ppl/legal", "eval_ppl/prose", "eval_loss"} <= set(logged)  # SFT's eval rows too


def mixture_run(sft, out, stop_at=None, resume=None):
    tok, ds = sft
    args = config(out, domain_weights=json.dumps(WEIGHTS), max_steps=6, save_strategy="steps", save_steps=3)
    tr = CurriculumSFTTrainer(model=model_for(tok), args=args, train_dataset=ds, processing_class=tok)
    tap = BlockTap(tr)
    if stop_at:
        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                control.should_training_stop = state.global_step == stop_at

        tr.add_callback(Stop())
    tr.train(resume_from_checkpoint=resume)
    return tr, tap


def test_domain_mixture_draws_every_global_batch_in_the_weights_and_resumes_exactly(tmp_path, sft):
    full_run, full = mixture_run(sft, tmp_path / "full")
    domains = np.asarray(sft[1]["domain_id"])
    steps = [np.concatenate(full.batches[i : i + 2]) for i in range(0, len(full.batches), 2)]  # 2 micro-batches each
    assert len(steps) == full_run.state.global_step == 6
    for ids in steps:
        assert np.bincount(domains[ids], minlength=3).tolist() == [8, 4, 4]
    _, part = mixture_run(sft, tmp_path / "part", stop_at=3)
    _, rest = mixture_run(sft, tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-3"))
    assert len(part.batches) == 6 and part.batches + rest.batches == full.batches  # the same examples, none replayed
    np.testing.assert_allclose(part.losses + rest.losses, full.losses, rtol=0, atol=1e-6)


def test_completion_only_labels_reach_the_curriculum_loss(tmp_path, sft):
    # a prompt-completion dataset: SFTTrainer sets the prompt's labels to -100; the curriculum's compute_loss (and
    # each block's loss) counts the completion tokens only, as SFTTrainer's own compute_loss does
    tok, ds = sft
    rows = ds.select(range(24))
    pc = datasets.Dataset.from_dict({"prompt": [t[:40] for t in rows["text"]], "completion": [t[40:120] for t in rows["text"]],
                                     "domain_id": rows["domain_id"]}).cast_column("domain_id", ds.features["domain_id"])
    args = config(tmp_path / "run", cls=SFTConfig, max_steps=2)  # TRL's own arguments, the curriculum as a keyword
    tr = CurriculumSFTTrainer(model=model_for(tok), args=args, train_dataset=pc, processing_class=tok,
                              curriculum=MixtureConfig(weights="uniform"))
    batch = tr.data_collator(tr.train_dataset.__getitems__([0, 1, 2, 3, 24]))  # slot 24: a padding slot
    labels, mask = batch["labels"], batch["attention_mask"].bool()
    assert (labels[:4][mask[:4]] == -100).any()  # prompt tokens of real rows are masked
    assert (labels[4] == -100).all() and batch["block_id"].tolist() == [0, 1, 2, 3, -1]
    assert (labels[~mask] == -100).all()  # padding too
    tr.model.eval()
    ours = tr.compute_loss(tr.model, dict(batch))
    theirs = SFTTrainer.compute_loss(tr, tr.model, {k: v for k, v in batch.items() if k not in ("block_id", "domain_id")})
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    tr.train()  # and it trains, with the examples' domains
    assert tr.state.global_step == 2


def test_blocks_packed_before_the_trainer_keep_their_ids(tmp_path, sft, plan_file, clm_corpus):
    # domain-pure fixed-length blocks (curricula's pack_dataset): SFTTrainer only adds labels, the ids stay
    from curricula.data import pack_dataset

    tok, ds = sft
    raw = datasets.Dataset.from_list([json.loads(line) for line in (clm_corpus / "docs.jsonl").read_text().splitlines()])
    blocks = pack_dataset(raw, tokenizer=str(clm_corpus / "bpe"), block_size=64, domain_column="domain")
    args = config(tmp_path / "run", max_steps=2, domain_weights="uniform")
    tr = CurriculumSFTTrainer(model=model_for(tok), args=args, train_dataset=blocks, processing_class=tok)
    assert tr.train_dataset.n == len(blocks) and tr.domain_names == ["code", "legal", "prose"]
    np.testing.assert_array_equal(tr.train_dataset.ds["block_id"], blocks["block_id"])
    assert {len(ids) for ids in tr.train_dataset.ds["input_ids"]} == {64}
    tr.train()


def test_what_cannot_take_a_curriculum_is_refused_with_the_fix(tmp_path, sft, plan_file):
    tok, ds = sft
    plan = plan_file(tmp_path, PLAN)

    def build(args, data=ds):
        return CurriculumSFTTrainer(model=model_for(tok), args=args, train_dataset=data, processing_class=tok)

    with pytest.raises(ConfigError, match="packing=True cannot take a curriculum.*pack_dataset"):
        build(config(tmp_path / "a", curriculum=plan, packing=True))
    with pytest.raises(ConfigError, match="padding_free=True cannot take a curriculum"):
        build(config(tmp_path / "b", curriculum=plan, padding_free=True))
    with pytest.raises(ConfigError, match="SFTTrainer needs an SFTConfig.*CurriculumSFTConfig"):
        build(CurriculumTrainingArguments(output_dir=str(tmp_path / "c"), curriculum=plan, use_cpu=True,
                                          report_to="none"))
    with pytest.raises(CurriculumDataError, match="needs an integer domain_id column.*class_encode_column"):
        build(config(tmp_path / "d", curriculum=plan), data=ds.remove_columns("domain_id"))
    with pytest.raises(ConfigError, match="loss_type='dft'.*use loss_type='nll'"):
        build(config(tmp_path / "e", curriculum=plan, loss_type="dft"))
    from trl import DPOTrainer

    with pytest.raises(ConfigError, match="only SFTTrainer"):
        with_curriculum(DPOTrainer)
    # without a curriculum and without domains it is SFTTrainer as it was (its own loss, its packing)
    plain = build(config(tmp_path / "f", cls=SFTConfig, packing=True, max_steps=1), data=ds.remove_columns("domain_id"))
    assert not plain.block_logging and plain.curriculum is None
