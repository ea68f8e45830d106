"""CurriculumTrainer (``hf_trainer_ext/trainer.py``): same loss as Trainer, per-block losses from the training forward,
exact focus, exact resume (mid-phase and at an epoch boundary with evaluation), per-domain perplexity logs (also in
TensorBoard), the LR schedule argument, per-domain loss weights."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import Trainer, TrainingArguments, default_data_collator

from curricula.logs import read_curriculum_log
from curricula.methods.lfr.index_table import IndexTable
from curricula.run_layout import read_jsonl
from hf_trainer_ext import CurriculumTrainer

N, T, V = 96, 32, 128  # the sizes of the blocks and tiny_gpt2 fixtures (tests/support.py)
IDENTITY = {"name": "synthetic", "vocab_sha256": "0" * 64}


def test_without_curriculum_loss_trajectory_equals_trainer(tmp_path, blocks, loss_tap, targs, tiny_gpt2):
    ds = blocks()
    vanilla_ds = ds.map(lambda r: {"labels": r["input_ids"]}).remove_columns(["block_id", "domain_id"])
    ref_model = tiny_gpt2()
    ref_model.loss_type = "ForCausalLM"  # CurriculumTrainer sets this for GPT-2 (see its __init__)
    ref = Trainer(model=ref_model, args=targs(tmp_path / "a", cls=TrainingArguments, max_steps=8),
                  train_dataset=vanilla_ds, data_collator=default_data_collator)
    ref_tap = loss_tap(ref)
    ref.train()
    ours = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "b", max_steps=8), train_dataset=ds)
    tap = loss_tap(ours)
    ours.train()
    assert len(tap.losses) == len(ref_tap.losses) == 16
    np.testing.assert_allclose(tap.losses, ref_tap.losses, rtol=0, atol=1e-6)
    for p, q in zip(ours.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_logged_block_losses_equal_a_separate_nograd_evaluation(tmp_path, blocks, plan_file, targs, tiny_gpt2):
    ds = blocks()
    model = tiny_gpt2(dropout=0.0)
    plan = plan_file(tmp_path, "phases: [{kind: learn, epochs: 2}]")
    tr = CurriculumTrainer(model=model, args=targs(tmp_path / "run", curriculum=plan, learning_rate=0.0), train_dataset=ds)
    tr.train()
    log = read_curriculum_log(tmp_path / "run").to_pandas()
    for epoch in (0, 1):  # each block exactly once per learn epoch
        assert sorted(log[log.epoch == epoch].block_id) == list(range(N))
    model.eval()
    with torch.no_grad():
        x = torch.tensor(np.asarray(ds["input_ids"]), dtype=torch.long)
        logits = model(input_ids=x).logits
        ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1),
                                                reduction="none").view(N, T - 1).mean(-1).numpy()
    e0 = log[log.epoch == 0].sort_values("block_id")
    np.testing.assert_allclose(e0.loss.to_numpy(), ref, rtol=1e-5, atol=1e-5)
    assert (e0.step.to_numpy() >= 1).all() and e0.phase.unique().tolist() == ["learn"]


def test_focus_boundary_drops_exactly_the_lowest_perplexity_blocks(tmp_path, blocks, plan_file, targs, tiny_gpt2):
    plan = plan_file(tmp_path, "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 30, epochs: 2}]")
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "run", curriculum=plan), train_dataset=blocks())
    tr.train()
    log = read_curriculum_log(tmp_path / "run").to_pandas()
    learn = log[log.epoch == 0]
    n_drop = int(N * 30 // 100)
    # lowest perplexity first; ties by block id
    ranked = learn.sort_values(["loss", "block_id"], kind="stable").block_id.tolist()
    expected = sorted(set(range(N)) - set(ranked[:n_drop]))
    for epoch in (1, 2):  # decided once, at the phase's first epoch
        assert sorted(log[log.epoch == epoch].block_id) == expected
    report = json.loads((tmp_path / "run" / "curriculum" / "focus_reports.jsonl").read_text().splitlines()[0])
    assert report["n_dropped"] == n_drop and report["n_kept"] == N - n_drop
    # the easy domain is the one that leaves
    assert report["kept_per_domain"]["0"] < report["kept_per_domain"]["2"]
    steps = json.loads((tmp_path / "run" / "curriculum" / "plan.json").read_text())["total_steps"]
    assert tr.state.global_step == steps == 6 + 5 + 5  # focus epochs are shorter: ceil(68 / 16) steps
    assert tr.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the schedule ends with the plan


def test_nonfinite_block_loss_is_logged_and_kept(tmp_path, blocks, plan_file, targs, tiny_gpt2):
    plan = plan_file(tmp_path, "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 1}]")
    args = targs(tmp_path / "run", curriculum=plan, max_nonfinite_share=0.05)  # 1 of 96: below the stop policy's
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks())
    add = tr.recorder.add

    def poisoned(block_id, domain_id, loss, step):  # block 1 (easy domain, would be dropped) gets a NaN loss
        loss = torch.where(block_id == 1, torch.tensor(float("nan")), loss)
        add(block_id, domain_id, loss, step)

    tr.recorder.add = poisoned
    tr.train()
    log = read_curriculum_log(tmp_path / "run").to_pandas()
    assert np.isnan(log[(log.epoch == 0) & (log.block_id == 1)].loss).all()
    assert 1 in set(log[log.epoch == 1].block_id)  # kept, never ranked
    report = json.loads((tmp_path / "run" / "curriculum" / "focus_reports.jsonl").read_text().splitlines()[0])
    assert report["n_nonfinite_kept"] == 1
    assert any(h.get("curriculum/nonfinite_losses") == 1 for h in tr.state.log_history)


RESUME_PLAN = "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 2}, {kind: review, epochs: 1}]"


@pytest.fixture
def run_for_resume(blocks, loss_tap, plan_file, targs, tiny_gpt2):
    """``run_for_resume(tmp_path, out, stop_at=None, resume=None, save_steps=None)``: RESUME_PLAN on the blocks,
    stopped after step ``stop_at`` or resumed; returns (trainer, loss tap)."""

    def run(tmp_path, out, stop_at=None, resume=None, save_steps=None):
        plan = plan_file(tmp_path, RESUME_PLAN)
        extra = dict(save_strategy="steps", save_steps=save_steps) if save_steps else {}
        tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(out, curriculum=plan, **extra), train_dataset=blocks())
        tap = loss_tap(tr)
        if stop_at:
            from transformers import TrainerCallback

            class Stop(TrainerCallback):
                def on_step_end(self, args, state, control, **kw):
                    if state.global_step == stop_at:
                        control.should_training_stop = True

            tr.add_callback(Stop())
        tr.train(resume_from_checkpoint=resume)
        return tr, tap

    return run


def test_resume_in_the_middle_of_a_focus_phase_is_exact(tmp_path, run_for_resume):
    # steps per epoch: learn 6, focus 3, focus 3, review 6: step 8 is in the middle of the first focus epoch
    full, full_tap = run_for_resume(tmp_path, tmp_path / "full")
    part, part_tap = run_for_resume(tmp_path, tmp_path / "part", stop_at=8, save_steps=8)
    ckpt = tmp_path / "part" / "checkpoint-8"
    assert (ckpt / "curriculum" / "pending.parquet").is_file()
    assert pq.read_table(ckpt / "curriculum" / "pending.parquet").num_rows == 32  # 2 focus steps x 16 blocks
    rest, rest_tap = run_for_resume(tmp_path, tmp_path / "part", resume=str(ckpt))
    # the remaining batch order, then everything after, equals the uninterrupted run's
    assert part_tap.batches + rest_tap.batches == full_tap.batches
    np.testing.assert_allclose(part_tap.losses + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    a, b = read_curriculum_log(tmp_path / "full").to_pandas(), read_curriculum_log(tmp_path / "part").to_pandas()
    assert a[["block_id", "domain_id", "epoch", "phase", "step"]].equals(b[["block_id", "domain_id", "epoch", "phase", "step"]])
    np.testing.assert_allclose(a.loss, b.loss, rtol=0, atol=1e-6)
    ta = IndexTable.load(tmp_path / "full" / "curriculum" / "table.arrow")
    tb = IndexTable.load(tmp_path / "part" / "curriculum" / "table.arrow")
    np.testing.assert_array_equal(ta.eligible_ids(), tb.eligible_ids())
    np.testing.assert_allclose(ta.loss, tb.loss, rtol=0, atol=1e-6)
    assert rest.state.global_step == full.state.global_step == 18


def test_resume_at_a_plan_epoch_boundary_with_epoch_evaluation_is_identical(tmp_path, blocks, lfr):
    # the checkpoint at step 6 is the learn epoch's last step: saved before the boundary and the epoch-end evaluation
    ev = dict(eval_strategy="epoch", per_device_eval_batch_size=16, eval_dataset=blocks(24, seed=5))
    full, full_tap = lfr(tmp_path, tmp_path / "full", save_steps=6, **ev)
    part, part_tap = lfr(tmp_path, tmp_path / "part", stop_at=6, save_steps=6, **ev)
    rest, rest_tap = lfr(tmp_path, tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-6"), save_steps=6, **ev)
    assert part_tap.batches + rest_tap.batches == full_tap.batches
    np.testing.assert_allclose(part_tap.losses + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    a, b = read_curriculum_log(tmp_path / "full").to_pandas(), read_curriculum_log(tmp_path / "part").to_pandas()
    np.testing.assert_allclose(a.loss, b.loss, rtol=0, atol=1e-6)
    assert read_jsonl(tmp_path / "full" / "curriculum" / "focus_reports.jsonl") == \
        read_jsonl(tmp_path / "part" / "curriculum" / "focus_reports.jsonl")


def test_perplexity_logging_keeps_trainers_own_logs(tmp_path, blocks, targs, tiny_gpt2):
    # on_log clears control.should_log: logging from a callback must not swallow Trainer's loss/lr log of that step
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=4, logging_steps=1), train_dataset=blocks(),
                           domain_names=["easy", "half", "random"])
    tr.train()
    steps_with_loss = [h["step"] for h in tr.state.log_history if "loss" in h]
    steps_with_ppl = [h["step"] for h in tr.state.log_history if "train_ppl/easy" in h]
    assert steps_with_loss == steps_with_ppl == [1, 2, 3, 4]
    assert all("learning_rate" in h for h in tr.state.log_history if "loss" in h)


def test_tensorboard_event_file_has_the_per_domain_perplexities(tmp_path, monkeypatch, blocks, targs, tiny_gpt2):
    pytest.importorskip("tensorboard", reason="pip install 'curricula[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))  # transformers 5: where the events go
    args = targs(tmp_path / "run", max_steps=4, logging_steps=2, report_to="tensorboard", domain_weights="uniform",
                 eval_strategy="steps", eval_steps=4)
    CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), eval_dataset=blocks(24, seed=3),
                      domain_names=["easy", "half", "random"]).train()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = set(events.Tags()["scalars"])
    for name in ("easy", "half", "random"):
        assert f"train/train_ppl/{name}" in tags and f"eval/ppl/{name}" in tags  # Trainer files eval_x as eval/x
    assert [e.step for e in events.Scalars("train/train_ppl/easy")] == [2, 4]
    assert "eval/ppl_worst" in tags and "train/loss" in tags


def test_lr_schedule_argument_drives_the_optimizer(tmp_path, blocks, targs, tiny_gpt2):
    from curricula.optim.schedules import schedule_from_dict

    spec = {"type": "infinite", "max_lr": 1e-3, "constant_lr": 5e-4, "min_lr": 1e-5, "warmup_steps": 2,
            "cooldown_steps": 4, "cooldown": "cosine", "anneal": "exponential", "anneal_steps": 3}
    args = targs(tmp_path, max_steps=20, logging_steps=1, lr_schedule=json.dumps(spec), anneal_at=8)
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks())
    tr.train()
    expected = schedule_from_dict(spec).with_anneal(8)
    logged = {h["step"]: h["learning_rate"] for h in tr.state.log_history if "learning_rate" in h}
    for step, lr in logged.items():  # step g ran with lr(g - 1)
        assert lr == pytest.approx(expected.lr(step - 1), rel=1e-9, abs=1e-12)
    assert tr.state.global_step == 11  # the anneal (steps 8..10) ends the run


def test_loss_weights_hook_weights_each_domains_tokens(tmp_path, blocks, targs, tiny_gpt2):
    """Group DRO's hook: per-domain token weights alpha_d / p_d enter the backpropagated loss."""
    from curricula.methods import GroupDROConfig

    tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0), args=targs(tmp_path, max_steps=1), train_dataset=blocks(),
                           curriculum=GroupDROConfig(), reference_losses=None, reference_model=tiny_gpt2(seed=5),
                           tokenizer_identity=IDENTITY)
    tr._loss_weights = torch.tensor([3.0, 0.0, 0.0])
    batch = tr.data_collator(tr.train_dataset.__getitems__(list(range(0, 96, 6))))
    tr.model.train()
    loss = tr.compute_loss(tr.model, dict(batch))
    tr._loss_weights = None
    plain_on_domain0 = tr.compute_loss(tr.model, {k: v[batch["domain_id"] == 0] for k, v in batch.items()})
    share = float((batch["domain_id"] == 0).float().mean())
    assert float(loss) == pytest.approx(3.0 * share * float(plain_on_domain0), rel=1e-5)
