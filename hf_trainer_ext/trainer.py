"""``CurriculumTrainer``: ``transformers.Trainer`` that records every training block's loss and follows a plan.

How a plan maps onto Trainer (no fork of the training loop):

* one Trainer epoch = one plan epoch. ``set_initial_training_values`` sets the number of epochs to the plan's and
  ``max_steps`` to the plan's real number of optimizer steps (focus epochs are shorter), so the LR schedule ends
  exactly where the plan ends;
* ``CurriculumCallback.on_step_end`` stops each Trainer epoch at its plan epoch's step count, and ``on_epoch_end``
  runs the phase boundary (``finish_plan_epoch``): gather the epoch's block losses from every process, write the
  curriculum log, update the index table, decide the next epoch's blocks. Nothing is read ahead across it, so a
  focus selection sees every loss of the previous phase (exact, no approximation);
* resume: the curriculum state (table, policy, the current epoch's records so far) is saved in each checkpoint, and
  ``_init_training_state`` maps the global step back to (plan epoch, step in epoch) before Trainer skips batches.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from transformers import Trainer
from transformers.trainer_utils import get_last_checkpoint

from curricula.curriculum.index_table import IndexTable
from curricula.curriculum.log import LOG_DIR, write_epoch_log, write_parquet_atomic, sort_records
from curricula.curriculum.plan import Plan
from curricula.curriculum.state import CurriculumState
from hf_trainer_ext.callbacks import CurriculumCallback, PerplexityLoggerCallback
from hf_trainer_ext.data import BlockCollator, BlockDataset, CurriculumDataError, check_block_dataset
from hf_trainer_ext.losses import block_mean_losses, causal_lm_token_losses
from hf_trainer_ext.recorder import BlockLossRecorder
from hf_trainer_ext.sampler import CurriculumSampler

CKPT_DIR = "curriculum"
PENDING = "pending.parquet"
BLOCK_COLUMNS = ("block_id", "domain_id")


def load_plan(spec: str | None, params: dict | None = None) -> Plan | None:
    if spec is None:
        return None
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Plan.from_yaml(path, **(params or {}))
    return Plan.from_recipe(spec, **(params or {}))


class CurriculumTrainer(Trainer):
    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, *a, domain_names=None, **kw):
        self.plan = load_plan(getattr(args, "curriculum", None), getattr(args, "curriculum_params", None))
        log_blocks = getattr(args, "log_block_losses", True)
        has_blocks = train_dataset is not None and all(c in getattr(train_dataset, "column_names", ()) for c in BLOCK_COLUMNS)
        if self.plan is not None:
            check_block_dataset(train_dataset)
        # GPT-2 leaves loss_type unset, so Trainer counts B*T instead of B*(T-1) loss tokens and the loss comes out
        # (T-1)/T too low; name the causal-LM loss before Trainer inspects the model
        if model is not None and getattr(model, "loss_type", "") is None and not model.config.is_encoder_decoder:
            model.loss_type = "ForCausalLM"
        self.block_logging = bool(log_blocks and has_blocks)
        if args is not None:  # Trainer pickles args into the training_args.bin that push_to_hub() uploads
            from hf_trainer_ext.hub import protect_hub_token

            protect_hub_token(args)
        self._domain_ids = None
        if self.block_logging:
            self._domain_ids = np.asarray(train_dataset.with_format("numpy")["domain_id"])
            train_dataset = BlockDataset(train_dataset)
            data_collator = data_collator or BlockCollator()
        super().__init__(model, args, data_collator, train_dataset, *a, **kw)
        n_domains = int(self._domain_ids.max()) + 1 if self._domain_ids is not None and len(self._domain_ids) else 0
        self.domain_names = list(domain_names) if domain_names is not None else [str(d) for d in range(n_domains)]
        # per-block records are kept only when a plan consumes them at its phase boundaries
        self.recorder = (BlockLossRecorder(max(n_domains, len(self.domain_names)), keep_records=self.plan is not None)
                         if self.block_logging else None)
        self.curriculum: CurriculumState | None = None
        self.mixture_weights = None
        if getattr(self.args, "domain_weights", None) is not None:
            if self._domain_ids is None:
                raise CurriculumDataError("domain_weights needs training data with block_id and domain_id (curricula pack)")
            self.mixture_weights = parse_domain_weights(self.args.domain_weights, self.domain_names)
        self.eval_recorder: BlockLossRecorder | None = None
        self.log_dir = Path(self.args.output_dir) / LOG_DIR
        if self.block_logging:
            self.add_callback(CurriculumCallback(self))
            self.add_callback(PerplexityLoggerCallback(self))

    def log_extra(self, logs: dict) -> None:
        """``Trainer.log`` from inside a callback: ``on_log`` clears ``control.should_log``, which would silently drop
        Trainer's own loss/learning-rate log of the same step, so the flag is put back."""
        should_log = self.control.should_log
        self.log(logs)
        self.control.should_log = should_log

    # ---- data --------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        for c in BLOCK_COLUMNS:  # let block ids of HF evaluation datasets reach compute_loss, which drops them
            if c not in self._signature_columns:
                self._signature_columns.append(c)

    def _get_train_sampler(self, train_dataset=None):
        if self.curriculum is not None:
            return CurriculumSampler(self.curriculum)
        if self.mixture_weights is not None:
            from hf_trainer_ext.mixing_sampler import MixtureSampler, domain_pools

            pools = domain_pools(self._domain_ids, len(self.domain_names))
            seed = self.args.curriculum_seed if self.args.curriculum_seed is not None else self.args.seed
            return MixtureSampler(pools, self.mixture_weights, self.global_batch, self.args.max_steps, seed,
                                  names=self.domain_names)
        return super()._get_train_sampler(train_dataset)

    @property
    def global_batch(self) -> int:
        return self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps

    # ---- loss --------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        block_id = inputs.pop("block_id", None)
        domain_id = inputs.pop("domain_id", None)
        if not self.block_logging or block_id is None or self.compute_loss_func is not None or self.label_smoother:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        tok, valid = causal_lm_token_losses(outputs.logits, labels)
        loss = self.normalise_loss(tok.sum(), valid, num_items_in_batch)
        self._record(model, block_id, domain_id, tok, valid)
        return (loss, outputs) if return_outputs else loss

    def normalise_loss(self, total: torch.Tensor, valid: torch.Tensor, num_items_in_batch) -> torch.Tensor:
        """A summed token loss normalised the way Trainer normalises the model's own loss: by the tokens of the whole
        accumulated (and, with ``average_tokens_across_devices``, all-process) batch, else by this micro-batch's."""
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return loss
        return total / valid.sum()

    def _record(self, model, block_id, domain_id, tok, valid) -> None:
        rec = self.recorder if model.training else self.eval_recorder
        if rec is not None:
            rec.add(block_id, domain_id, block_mean_losses(tok.detach(), valid), self.state.global_step + 1)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluation plus, from the same forward passes, per-domain perplexity, its uniform average and
        its worst case (DoReMi's metrics), logged through ``Trainer.log``."""
        target = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not self.block_logging or isinstance(target, dict):  # a dict: Trainer calls back here per dataset
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        self.eval_recorder = BlockLossRecorder(len(self.domain_names))
        try:
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            records = self.eval_recorder.gather(self.accelerator)
        finally:
            self.eval_recorder = None
        extra = domain_perplexities(records, self.domain_names, metric_key_prefix)
        extra.update(self.evaluate_tasks(metric_key_prefix))
        if extra:
            metrics.update(extra)
            self.log_extra(extra)
        return metrics

    def evaluate_tasks(self, prefix: str = "eval") -> dict:
        """``args.eval_tasks`` scored by log-likelihood with the current weights (every process computes the same
        numbers on its own copy of the model, so no gather is needed)."""
        spec = getattr(self.args, "eval_tasks", None)
        if not spec:
            return {}
        from curricula.data.tokenizers import load_tokenizer
        from curricula.evaluation.tasks import get_task, load_task_file
        from hf_trainer_ext.evaluation import score_task

        if getattr(self, "_task_cache", None) is None:
            tasks = {}
            for item in (t.strip() for t in spec.split(",") if t.strip()):
                path = Path(item)
                tasks[path.stem if path.suffix == ".jsonl" else item] = (
                    load_task_file(path) if path.suffix == ".jsonl" else get_task(item).load())
            self._task_cache = (load_tokenizer(self.args.eval_tokenizer), tasks)
        tokenizer, tasks = self._task_cache
        model = self.accelerator.unwrap_model(self.model)
        out = {}
        for name, examples in tasks.items():
            result = score_task(model, tokenizer, examples, batch_size=self.args.per_device_eval_batch_size)
            out[f"{prefix}_task/{name}/accuracy"] = result["accuracy"]
            if "accuracy_norm" in result:
                out[f"{prefix}_task/{name}/accuracy_norm"] = result["accuracy_norm"]
        return out

    # ---- LR schedule --------------------------------------------------------------------------------------------

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """A curricula schedule (``args.lr_schedule``: warmup-cosine, re-warm stages, infinite with on-demand anneal)
        in place of ``lr_scheduler_type``; it lives in the scheduler's state_dict, so a resume restores the exact LR."""
        spec = getattr(self.args, "lr_schedule", None)
        if spec is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        from hf_trainer_ext.schedulers import AnnealCallback, create_schedule_scheduler

        self.lr_scheduler = create_schedule_scheduler(
            optimizer if optimizer is not None else self.optimizer, spec, num_training_steps=num_training_steps
        )
        self._created_lr_scheduler = True
        annealable = hasattr(self.lr_scheduler.schedule, "anneal_start")
        if annealable and not any(isinstance(cb, AnnealCallback) for cb in self.callback_handler.callbacks):
            trigger = os.path.join(self.args.output_dir, "ANNEAL")
            self.add_callback(AnnealCallback(at_step=self.args.anneal_at, trigger_file=trigger))
        return self.lr_scheduler

    # ---- the plan ----------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        if self.plan is not None:
            ckpt = resume_from_checkpoint
            if ckpt is True:
                ckpt = get_last_checkpoint(self.args.output_dir)
                if ckpt is None:
                    raise ValueError(f"resume_from_checkpoint=True but {self.args.output_dir} has no checkpoint")
            seed = self.args.curriculum_seed if getattr(self.args, "curriculum_seed", None) is not None else self.args.seed
            saved = Path(ckpt) / CKPT_DIR if ckpt else None
            if saved is not None and (saved / "state.json").is_file():
                self.curriculum = CurriculumState.load(saved, self.plan, self.global_batch)
                self.recorder.clear()
                if (saved / PENDING).is_file() and self.args.process_index == 0:  # one copy, gathered later
                    self.recorder.load(pq.read_table(saved / PENDING).to_pydict())
            else:
                if saved is not None:
                    raise ValueError(f"{ckpt} has no curriculum state ({saved}); it was not saved by this curriculum run")
                self.curriculum = CurriculumState(self.plan, IndexTable.new(self._domain_ids), seed, self.global_batch)
                self.curriculum.begin_epoch(0)
                if self.args.should_save:
                    shutil.rmtree(self.log_dir, ignore_errors=True)  # a new run: no epoch files of an older one
                    self._write_run_info()
            # one epoch's records on this process, allocated before training allocates its large buffers
            share = self.curriculum.max_epoch_slots // max(self.args.world_size, 1) + self.global_batch
            self.recorder.reserve(share, self.args.device)
            resume_from_checkpoint = ckpt
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    def set_initial_training_values(self, args, dataloader):
        values = list(super().set_initial_training_values(args, dataloader))
        if self.curriculum is not None:
            total_batch = values[4]
            values[0] = len(self.curriculum.epochs)  # num_train_epochs
            values[6] = self.curriculum.total_steps  # max_steps: the plan's real steps, so the LR schedule fits
            values[3] = self.curriculum.total_steps * total_batch  # num_train_samples
        return tuple(values)

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial):
        epochs_trained, steps = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
        )
        if self.curriculum is not None and resume_from_checkpoint is not None:
            # Trainer assumes equal epochs; the plan's are not: place the global step in the plan instead
            epoch, done = self.curriculum.position(self.state.global_step)
            if epoch != self.curriculum.epoch:  # saved at the last step of an epoch, before its boundary ran
                self.finish_plan_epoch()
            epochs_trained = epoch
            steps = 0 if self.args.ignore_data_skip else done * self.args.gradient_accumulation_steps
        return epochs_trained, steps

    def finish_plan_epoch(self) -> None:
        """The phase boundary: gather, log, update the table, decide the next epoch's blocks (on every process)."""
        cur = self.curriculum
        records = sort_records(**self.recorder.gather(self.accelerator))
        self.recorder.clear()
        epoch = cur.current
        if self.args.should_save:
            write_epoch_log(self.log_dir, epoch, records)
        cur.record_epoch(records["block_id"], records["loss"])
        finite = np.isfinite(records["loss"])
        summary = {
            "curriculum/epoch": epoch.index,
            "curriculum/blocks_trained": int(len(records["loss"])),
            "curriculum/nonfinite_losses": int((~finite).sum()),
        }
        if epoch.index + 1 < len(cur.epochs):
            kept = cur.begin_epoch(epoch.index + 1)
            nxt = cur.current
            summary["curriculum/next_blocks"] = int(len(kept))
            if nxt.kind == "focus" and cur.policy.last_report is not None:
                report = cur.policy.last_report.to_dict()
                for d, k in report.get("kept_per_domain", {}).items():
                    name = self.domain_names[int(d)] if int(d) < len(self.domain_names) else d
                    total = int(np.count_nonzero(self._domain_ids == int(d)))
                    summary[f"curriculum/kept_share/{name}"] = k / max(total, 1)
                if self.args.should_save:
                    with open(self.log_dir / "focus_reports.jsonl", "a") as fh:
                        fh.write(json.dumps({"epoch": nxt.index, "phase_index": nxt.phase_index, **report}) + "\n")
        if self.args.should_save:
            cur.table.save(self.log_dir / "table.arrow")
        self.log_extra(summary)

    # ---- the run's record and card ------------------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:  # the arguments as JSON (hub tokens masked by to_dict), for the model card
            path = Path(output_dir or self.args.output_dir) / "training_config.json"
            path.write_text(json.dumps(self.args.to_dict(), indent=2, default=str))

    def create_model_card(self, *args, **kwargs):
        """Trainer's ``push_to_hub`` calls this before uploading ``output_dir``: write the curricula card (plan,
        replay, LR schedule and its plot, weights, analysis, training configuration, results) instead of Trainer's
        generic one. Files are replaced atomically through ``_``-prefixed temporaries (Trainer's uploads skip ``_*``)
        because a checkpoint push may still be reading ``output_dir`` in the background."""
        if not self.is_world_process_zero():
            return
        from hf_trainer_ext.hub import collect_run_files, prepare_extras, render_card

        out = Path(self.args.output_dir)
        repo_id = self.hub_model_id or self.args.hub_model_id or out.name
        files = sorted(set(collect_run_files(out)) | set(prepare_extras(out, out, self.state.log_history)))
        card = render_card(out, repo_id, files, license=kwargs.get("license") or "apache-2.0",
                           log_history=self.state.log_history)
        tmp = out / "_README.md.tmp"
        tmp.write_text(card)
        os.replace(tmp, out / "README.md")

    # ---- checkpoints -------------------------------------------------------------------------------------------

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """Trainer starts the background upload of a checkpoint inside ``_save_checkpoint``, before the ``on_save``
        callbacks that write the curriculum state (and a DoReMi proxy's weights) into it, so the pushed checkpoint
        could lack them and not resume. Write them first (every process: the curriculum gather is collective);
        ``on_save`` then finds the curriculum state written and skips it."""
        self.save_curriculum_checkpoint(checkpoint_folder)
        self._checkpoint_state_written = os.path.normpath(checkpoint_folder)
        if hasattr(self, "save_doremi_state"):  # DoReMiProxyTrainer: idempotent, rewritten by its on_save
            self.save_doremi_state(checkpoint_folder)
        super()._push_from_checkpoint(checkpoint_folder)

    def save_curriculum_checkpoint(self, checkpoint: str) -> None:
        if self.curriculum is None:
            return
        if getattr(self, "_checkpoint_state_written", None) == os.path.normpath(checkpoint):
            self._checkpoint_state_written = None  # written just before the push of this checkpoint
            return
        records = self.recorder.gather(self.accelerator)  # collective; local records stay for the epoch's end
        if self.args.should_save:
            target = Path(checkpoint) / CKPT_DIR
            self.curriculum.save(target)
            write_parquet_atomic(_records_arrow(sort_records(**records)), target / PENDING)

    def _write_run_info(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cur = self.curriculum
        info = {
            "plan": cur.plan.to_dict(),
            "seed": cur.seed,
            "global_batch": cur.global_batch,
            "n_blocks": cur.n_blocks,
            "domain_names": self.domain_names,
            "epochs": [
                {"index": e.index, "kind": e.kind, "phase_index": e.phase_index, "drop_percent": e.drop_percent,
                 "blocks": b, "steps": s}
                for e, b, s in zip(cur.epochs, cur.blocks_per_epoch, cur.steps_per_epoch)
            ],
            "total_steps": cur.total_steps,
        }
        tmp = self.log_dir / "run.json.tmp"
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.log_dir / "run.json")


def parse_domain_weights(spec: str, names: list[str]) -> np.ndarray:
    """'uniform' | JSON list (domain-id order) | JSON object {name: w} | a weights JSON file → float64 weights."""
    from curricula.curriculum.mixing import check_weights

    if spec == "uniform":
        return np.full(len(names), 1.0 / len(names))
    if Path(spec).is_file():
        from curricula.curriculum.doremi import read_weights_json

        return read_weights_json(spec, names)
    value = json.loads(spec)
    if isinstance(value, dict):
        missing, extra = sorted(set(names) - set(value)), sorted(set(value) - set(names))
        if missing or extra:
            raise ValueError(f"domain_weights names {sorted(value)} do not match the data's domains {names}: "
                             f"missing {missing}, unknown {extra}")
        value = [value[n] for n in names]
    return check_weights(np.asarray(value, dtype=np.float64), names)


def domain_perplexities(records: dict, names: list[str], prefix: str = "eval") -> dict:
    """exp(mean token loss) per domain (blocks have equal length, so the mean of block means is the token mean),
    its uniform average over domains and its worst case."""
    loss, dom = records["loss"], records["domain_id"]
    ok = np.isfinite(loss)
    out, ppls = {}, []
    for d, name in enumerate(names):
        sel = ok & (dom == d)
        if sel.any():
            ppl = float(np.exp(loss[sel].mean()))
            out[f"{prefix}_ppl/{name}"] = ppl
            ppls.append(ppl)
    if ppls:
        out[f"{prefix}_ppl_avg"] = float(np.mean(ppls))
        out[f"{prefix}_ppl_worst"] = float(np.max(ppls))
    return out


def _records_arrow(records: dict):
    import pyarrow as pa

    return pa.table({k: pa.array(v) for k, v in records.items()})
