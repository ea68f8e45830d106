"""``CurriculumTrainer``: ``transformers.Trainer`` with one curriculum, one sampler, one callback, one ``compute_loss``.

Every method (LFR, weighted mixtures, replay, DoReMi's Group-DRO proxy, one-run DoReMi) is a ``Curriculum`` from
``curricula.methods``; the trainer drives it without knowing which it is:

* one Trainer epoch = one curriculum epoch; ``set_initial_training_values`` (``compat.py``) sets the number of epochs
  and ``max_steps`` to the curriculum's, so the LR schedule ends exactly where the run ends;
* ``CurriculumSampler`` yields the curriculum's global batches; after each optimizer step the curriculum observes the
  global batch's per-domain statistics if it needs them (``observe_step``); at each epoch end ``finish_epoch`` gathers
  the epoch's per-block losses from every process, writes the curriculum log and lets the curriculum decide the next
  epoch. Nothing is read ahead across a boundary, so an LFR focus selection sees every loss of the previous phase;
* ``compute_loss`` runs one cross-entropy on the training logits and derives from it the backpropagated loss
  (Trainer's normalisation), each block's mean loss, the per-domain step statistics and, when the curriculum gives
  per-domain loss weights (Group DRO), the weighted loss;
* checkpoints hold the curriculum state (JSON + Arrow/numpy) and the current epoch's records, written before Trainer
  rotates older checkpoints, with a completeness marker last; resume maps the global step back to (epoch, step).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from curricula.curriculum.log import LOG_DIR, sort_records, write_epoch_log
from curricula.errors import ConfigError, DivergenceError, RunFolderError
from curricula.methods.base import Curriculum, DataInfo, EpochRecords, MethodConfig, Report, RunInfo
from curricula.run_layout import (COMPLETE, RunDir, atomic_dir, checkpoint_missing, new_run_id, read_json, read_table,
                                  resolve_resume,
                                  write_json, write_parquet, write_text)
from hf_trainer_ext.callbacks import CurriculumCallback
from hf_trainer_ext.compat import TrainerCompat, running_loss_sum
from hf_trainer_ext.data import (BLOCK_COLUMNS, BlockCollator, BlockDataset, CurriculumDataError, check_block_dataset,
                                 check_collator)
from hf_trainer_ext.losses import block_mean_losses, causal_lm_token_losses
from hf_trainer_ext.recorder import BlockLossRecorder, StepStatsAccumulator, perplexity
from hf_trainer_ext.sampler import CurriculumSampler

logger = logging.getLogger(__name__)

CKPT_DIR = "curriculum"
PENDING = "pending.parquet"
EVENTS = "events.json"  # the curriculum's decisions so far (the reports file is rewritten from it)


class CurriculumTrainer(TrainerCompat, Trainer):
    """``Trainer`` plus a curriculum. Extra keywords: ``domain_names`` (default: the ``domain_id`` ClassLabel's
    names, or the packed data's), ``curriculum`` (a ``MethodConfig``, instead of ``args.curriculum``), ``packed`` (a
    ``PackedData``: training data, domain names and tokenizer in one), ``reference_losses`` / ``reference_model``
    (for methods that need a reference), ``tokenizer_identity`` (stamped on weights files), ``lineage`` (the runs
    this one builds on, recorded in ``run.json``)."""

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, *a, domain_names=None,
                 curriculum: MethodConfig | None = None, packed=None, reference_losses=None, reference_model=None,
                 tokenizer_identity: dict | None = None, lineage: list[dict] | None = None, **kw):
        if getattr(args, "packing", False):  # TRL-style: text or tokenized documents in, dense domain-pure blocks out
            train_dataset = pack_for_training(train_dataset, args, model, kw.get("processing_class"))
            if kw.get("eval_dataset") is not None:
                ev = kw["eval_dataset"]
                kw["eval_dataset"] = ({k: pack_for_training(v, args, model, kw.get("processing_class"))
                                       for k, v in ev.items()} if isinstance(ev, dict)
                                      else pack_for_training(ev, args, model, kw.get("processing_class")))
        if packed is not None:
            train_dataset = packed.train if train_dataset is None else train_dataset
            domain_names = packed.domain_names if domain_names is None else domain_names
            tokenizer_identity = packed.tokenizer if tokenizer_identity is None else tokenizer_identity
        config = getattr(args, "curriculum_config", None)
        if curriculum is not None:
            if config is not None:
                raise ConfigError(f"a curriculum is given twice: curriculum={type(curriculum).__name__} and "
                                  f"args.curriculum={args.curriculum!r} / domain_weights; give one")
            if not isinstance(curriculum, MethodConfig):
                raise ConfigError(f"curriculum= takes a curricula MethodConfig (e.g. LFRConfig, MixtureConfig), got "
                                  f"{type(curriculum).__name__}; a recipe name goes to CurriculumTrainingArguments")
            config = curriculum
        self.curriculum_config: MethodConfig | None = config
        log_blocks = getattr(args, "log_block_losses", True)
        if config is not None:
            # before anything else: the message says how to get block columns
            check_block_dataset(train_dataset, what=f"method {config.method!r}")
        has_blocks = train_dataset is not None and all(c in (getattr(train_dataset, "column_names", None) or ())
                                                       for c in BLOCK_COLUMNS)
        self.loss_type_note = None
        # GPT-2 leaves loss_type unset, so Trainer counts B*T instead of B*(T-1) loss tokens and the loss comes out
        # (T-1)/T too low; name the causal-LM loss before Trainer inspects the model
        if model is not None and getattr(model, "loss_type", "") is None and not model.config.is_encoder_decoder:
            model.loss_type = "ForCausalLM"
            self.loss_type_note = (f"{type(model).__name__} had no loss_type: set to ForCausalLM, so the loss counts "
                                   "the T-1 predicted tokens of each block (Trainer would count T; losses are "
                                   "T/(T-1) of what a plain Trainer reports)")
        self.block_logging = bool(log_blocks and has_blocks)
        if args is not None:  # Trainer pickles args into the training_args.bin that push_to_hub() uploads
            from hf_trainer_ext.hub import protect_hub_token

            protect_hub_token(args)
        self._domain_ids = None
        if self.block_logging:
            self._domain_ids = np.asarray(train_dataset.with_format("numpy")["domain_id"])
            if domain_names is None:
                domain_names = _class_label_names(train_dataset)
            train_dataset = BlockDataset(train_dataset, inputs=_model_inputs(model), checked=config is not None)
            if data_collator is not None and not isinstance(data_collator, BlockCollator):
                check_collator(data_collator, train_dataset)
                data_collator = BlockCollator(data_collator)
            data_collator = data_collator or BlockCollator()
        elif config is not None:
            raise CurriculumDataError("a curriculum needs training data with block_id and domain_id (curricula pack)")
        super().__init__(model, args, data_collator, train_dataset, *a, **kw)
        n_domains = int(self._domain_ids.max()) + 1 if self._domain_ids is not None and len(self._domain_ids) else 0
        self.domain_names = list(domain_names) if domain_names is not None else [str(d) for d in range(n_domains)]
        self.tokenizer_identity = tokenizer_identity
        self.lineage = list(lineage or [])
        self.run_dir = RunDir(self.args.output_dir)
        self.log_dir = Path(self.args.output_dir) / LOG_DIR
        self.curriculum: Curriculum | None = self._build_curriculum(config) if config is not None else None
        needs = self.curriculum.needs if self.curriculum is not None else frozenset()
        # per-block records are kept only when the curriculum consumes them at its boundaries
        self.recorder = (BlockLossRecorder(max(n_domains, len(self.domain_names)), keep_records="block_records" in needs)
                         if self.block_logging else None)
        self.eval_recorder: BlockLossRecorder | None = None
        self.reference_model = None
        self._step_stats = None
        if "reference" in needs:
            self._attach_reference(reference_losses or getattr(self.args, "reference_losses", None), reference_model)
        elif reference_losses is not None or reference_model is not None:
            raise ConfigError(f"a reference is given but method {self.curriculum_config.method if config else None!r} "
                              "does not use one; drop reference_losses/reference_model")
        if "step_stats" in needs:
            self._step_stats = StepStatsAccumulator(len(self.domain_names), self.args.device, "reference" in needs)
        self._loss_weights: torch.Tensor | None = None
        self._step_report_metrics: dict = {}
        self._events: list[dict] = []
        self._resumed_loss: dict | None = None
        self._state_written_for: str | None = None
        if self.block_logging:
            self.add_callback(CurriculumCallback(self))

    # ---- the curriculum ---------------------------------------------------------------------------------------------

    @property
    def global_batch(self) -> int:
        return self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps

    def _build_curriculum(self, config: MethodConfig) -> Curriculum:
        args = self.args
        workers = args.dataloader_num_workers
        prefetch = (args.dataloader_prefetch_factor or 2) if workers > 0 else 0
        lookahead = 2 + math.ceil(workers * prefetch / args.gradient_accumulation_steps)
        data = DataInfo(self._domain_ids, self.domain_names, tokenizer=self.tokenizer_identity)
        run = RunInfo(self.global_batch, args.max_steps if args.max_steps > 0 else None,
                      getattr(args, "block_order_seed", args.seed), lookahead=lookahead)
        return config.build(data, run)

    def _attach_reference(self, reference_losses, reference_model) -> None:
        from hf_trainer_ext.reference import ReferenceLosses, load_model_checked

        method = self.curriculum.name
        if (reference_losses is None) == (reference_model is None):
            raise ConfigError(f"method {method!r} needs exactly one reference: reference_losses (a cache made by "
                              "score_reference, or --reference_losses DIR) or reference_model")
        if isinstance(reference_model, (str, Path)):
            reference_model = load_model_checked(reference_model, self.tokenizer_identity, what="the reference model")
        if reference_model is not None:
            self.reference_model = reference_model.to(self.args.device).eval().requires_grad_(False)
        else:
            ds = self.train_dataset
            block_size = len(ds.ds[0]["input_ids"])
            ds.extras["ref_loss"] = ReferenceLosses(reference_losses, len(ds), block_size, self.tokenizer_identity)

    def extra_input_columns(self) -> tuple[str, ...]:
        return BLOCK_COLUMNS

    def curriculum_sampler(self):
        return CurriculumSampler(self.curriculum) if self.curriculum is not None else None

    def resume_position(self, global_step: int) -> tuple[int, int]:
        """(Trainer epochs done, micro-batches to skip in the current one) for a resumed global step."""
        cur = self.curriculum
        epoch, done = cur.position(global_step)
        if epoch != cur.epoch:  # saved at the last step of an epoch, before its boundary ran
            self.finish_epoch()
        return epoch, 0 if self.args.ignore_data_skip else done * self.args.gradient_accumulation_steps

    def observe_step(self) -> None:
        """After an optimizer step (every process): the global batch's per-domain statistics to the curriculum."""
        if self._step_stats is None:
            return
        report = self.curriculum.observe_step(self._step_stats.reduce(self.accelerator, self.state.global_step))
        self._refresh_loss_weights()
        if report is not None:  # warnings and events; its metrics are logged with the next logging step's
            self._handle_report(report)
            self._step_report_metrics.update(report.metrics)

    def _refresh_loss_weights(self) -> None:
        w = self.curriculum.loss_weights() if self.curriculum is not None else None
        self._loss_weights = None if w is None else torch.as_tensor(w, dtype=torch.float32, device=self.args.device)

    def finish_epoch(self) -> None:
        """The boundary (every process): gather, log, let the curriculum decide the next epoch."""
        self.join_background_writes()
        cur = self.curriculum
        index = cur.epoch
        records = None
        if "block_records" in cur.needs:
            records = EpochRecords(**sort_records(**self.recorder.gather(self.accelerator)))
            self.recorder.clear()
            if self.args.should_save:
                write_epoch_log(self.log_dir, cur.epoch_label(index), vars(records))
        if records is not None:
            bad = int(np.count_nonzero(~np.isfinite(records.loss)))
            finite = records.loss[np.isfinite(records.loss)]
            self.check_divergence(f"epoch {index}", len(records), bad,
                                  float(finite.mean()) if finite.size else float("nan"))
        nxt = index + 1 if index + 1 < len(cur.epoch_steps()) else None
        shared = self._node_table_path(nxt)
        report = Report()
        if shared is None or self.accelerator.is_local_main_process:  # with a shared table: one process per node
            report = cur.end_epoch(records) or Report()
            if nxt is not None:
                report.merge(cur.start_epoch(nxt))
            if shared is not None:
                cur.table.save(shared)
        if shared is not None:
            self.adopt_node_table(shared, nxt)
        self._handle_report(report)
        if self.args.should_save and hasattr(cur, "write_log"):  # off the critical path: the table is not written
            self._background(cur.write_log, self.log_dir)           # to until the next boundary, which joins first
        if report.metrics:
            self.log_extra(report.metrics)

    def _node_table_path(self, epoch: int | None) -> Path | None:
        """Where the processes of a node share the index table (several processes, an index table, the next epoch
        known): a node-local file (``CURRICULA_SHARED_DIR``, default /dev/shm) that one process per node writes and
        every process of the node memory-maps, instead of each holding a private copy."""
        cur = self.curriculum
        if epoch is None or self.accelerator.num_processes == 1 or not hasattr(cur, "adopt_table") \
                or not getattr(self.args, "share_index_table", True):
            return None
        import hashlib
        import tempfile

        root = Path(os.environ.get("CURRICULA_SHARED_DIR") or ("/dev/shm" if os.access("/dev/shm", os.W_OK)
                                                                 else tempfile.gettempdir()))
        key = "|".join([str(Path(self.args.output_dir).resolve()), os.environ.get("MASTER_ADDR", ""),
                        os.environ.get("MASTER_PORT", ""), os.environ.get("TORCHELASTIC_RUN_ID", "")])
        return root / f"curricula-{hashlib.sha1(key.encode()).hexdigest()[:12]}-table-{epoch:04d}.arrow"

    def adopt_node_table(self, path: Path, epoch: int) -> None:
        """Every process of the node maps the table its node's process just wrote (and drops its own copy)."""
        self.accelerator.wait_for_everyone()
        self.curriculum.adopt_table(path, epoch)
        self.accelerator.wait_for_everyone()  # every process has mapped it: the name can go (the mapping stays)
        if self.accelerator.is_local_main_process:
            path.unlink(missing_ok=True)

    def _background(self, fn, *args) -> None:
        import threading

        def run():
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001  (re-raised where the write is joined)
                self._background_error = err

        self._background_error = None
        self._background_thread = threading.Thread(target=run, name="curricula-log-write", daemon=True)
        self._background_thread.start()

    def join_background_writes(self) -> None:
        """Wait for the boundary's background log write (before the table changes, a checkpoint, the end)."""
        thread = getattr(self, "_background_thread", None)
        if thread is not None:
            thread.join()
            self._background_thread = None
            if self._background_error is not None:
                raise self._background_error

    def _handle_report(self, report: Report) -> None:
        for w in report.warnings:
            logger.warning(w)
        if report.event is not None:  # the reports file is the event list of the state: one line per decision
            self._events.append(report.event)
            if self.args.should_save:
                lines = "".join(json.dumps(e) + "\n" for e in self._events)
                write_text(self.log_dir / getattr(self.curriculum, "reports_file", "reports.jsonl"), lines)

    def check_divergence(self, where: str, n: int, n_bad: int, mean_loss: float) -> None:
        """The non-finite / exploding loss policy (every process computes the same numbers, so all stop together)."""
        if n == 0:
            return
        share, limit = n_bad / n, getattr(self.args, "max_nonfinite_share", 1.0)
        max_loss, why = getattr(self.args, "max_loss", None), ""
        vocab = getattr(getattr(self.model, "config", None), "vocab_size", None)
        if max_loss is None and vocab:  # worse than guessing every token uniformly, three times over
            max_loss, why = 3.0 * math.log(vocab), ", 3 x ln(vocab): far worse than guessing uniformly"
        problem = None
        if share > limit:
            problem = (f"{n_bad} of {n} block losses are non-finite (NaN/inf; {share:.1%} > max_nonfinite_share "
                       f"{limit:g})")
        elif max_loss is not None and mean_loss > max_loss:
            problem = f"the mean block loss is {mean_loss:.4g} (> max_loss {max_loss:.4g}{why})"
        if problem is None:
            return
        complete = [p for p in self.run_dir.checkpoints() if not checkpoint_missing(p, self.curriculum is not None)]
        message = (f"training diverged in {where}: {problem}. Typical causes: a learning rate too high, a NaN in the "
                   "weights or the data. "
                   + (f"The last complete checkpoint is {complete[-1]}: lower the learning rate and resume from it"
                      if complete else "No checkpoint was saved: lower the learning rate and start again")
                   + "; --nonfinite_policy warn continues anyway.")
        if getattr(self.args, "nonfinite_policy", "stop") == "stop":
            raise DivergenceError(message)
        logger.warning(message)

    def log_extra(self, logs: dict) -> None:
        """``Trainer.log`` from inside a callback: ``on_log`` clears ``control.should_log``, which would silently drop
        Trainer's own loss/learning-rate log of the same step, so the flag is put back."""
        should_log = self.control.should_log
        self.log(logs)
        self.control.should_log = should_log

    def log_step_metrics(self) -> None:
        """At logging steps (every process: the per-domain sums are all-reduced): training perplexity per domain and
        the curriculum's own values, through ``Trainer.log`` so every ``report_to`` integration sees them."""
        logs = {}
        if self.recorder is not None:
            names = self.domain_names
            window = self.recorder.window(self.accelerator)
            for d, v in window["domains"].items():
                logs[f"train_ppl/{names[d] if d < len(names) else d}"] = perplexity(v)
            n = window["finite"] + window["nonfinite"]
            self.check_divergence(f"the steps up to {self.state.global_step}", int(n), int(window["nonfinite"]),
                                  window["loss_sum"] / window["finite"] if window["finite"] else float("nan"))
        if self.curriculum is not None:
            logs.update(self.curriculum.step_metrics())
        logs.update(self._step_report_metrics)
        self._step_report_metrics = {}
        if logs:
            self.log_extra(logs)

    # ---- loss -------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        block_id = inputs.pop("block_id", None)
        domain_id = inputs.pop("domain_id", None)
        ref = inputs.pop("ref_loss", None)
        if not self.block_logging or block_id is None or self.compute_loss_func is not None or self.label_smoother:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        tok, valid = causal_lm_token_losses(outputs.logits, labels)
        weights = None
        if model.training:
            if self._step_stats is not None:
                if self._step_stats.excess and ref is None:
                    with torch.no_grad():
                        ref, _ = causal_lm_token_losses(self.reference_model(**inputs).logits, labels)
                self._step_stats.add(domain_id, tok, valid, ref)
            weights = self._loss_weights
        if weights is None:
            total = tok.sum()
        else:  # per-domain token weights (Group DRO: alpha_d / p_d)
            total = (tok.sum(-1) * weights[domain_id.to(tok.device)]).sum()
        loss = self.normalise_loss(total, valid, num_items_in_batch)
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

    # ---- evaluation -------------------------------------------------------------------------------------------------

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluation plus, from the same forward passes, per-domain perplexity, its uniform average and
        its worst case (DoReMi's metrics), logged through ``Trainer.log``.

        Evaluation never moves the training RNG: its DataLoader draws a seed from the global generator, which would
        change the dropout masks after an evaluation, and a run resumed from a checkpoint saved just before an
        epoch-end evaluation (which it does not repeat) would then differ from the uninterrupted run."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and self.args.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self._evaluate_with_domains(eval_dataset, ignore_keys, metric_key_prefix)

    def _evaluate_with_domains(self, eval_dataset, ignore_keys, metric_key_prefix):
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

    # ---- LR schedule ------------------------------------------------------------------------------------------------

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
            self.add_callback(AnnealCallback(at_step=self.args.anneal_at, trigger_file=str(self.run_dir.anneal_trigger)))
        return self.lr_scheduler

    # ---- training ---------------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """Trainer's ``train`` with a guarded run folder and verified checkpoints: ``resume_from_checkpoint`` is a
        path, ``True`` or ``"latest"`` (the newest complete checkpoint); a fresh run refuses a folder holding another
        run unless ``overwrite_output_dir``."""
        ckpt = resolve_resume(self.args.output_dir, resume_from_checkpoint, curriculum=self.curriculum is not None,
                              warn=logger.warning)
        if self.loss_type_note and self.is_world_process_zero():
            logger.warning(self.loss_type_note)
        if ckpt is None:
            self._claim_run_folder()
        else:
            self._check_same_run(ckpt)
        cur = self.curriculum
        self._events, self._resumed_loss = [], None
        if ckpt is not None:
            self._resumed_loss = read_json(ckpt / COMPLETE, "checkpoint marker")
        if cur is not None:
            if ckpt is not None:
                self._restore_curriculum(ckpt)
            else:
                report = cur.start_epoch(0)
                if report is not None:
                    self._handle_report(report)
            self._refresh_loss_weights()
            # one epoch's records on this process, allocated before training allocates its large buffers
            if "block_records" in cur.needs:
                share = max(cur.epoch_steps()) * self.global_batch // max(self.args.world_size, 1) + self.global_batch
                self.recorder.reserve(share, self.args.device)
        if self.args.should_save:
            self._write_run_record(resumed=ckpt is not None)
        try:
            out = super().train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None, trial=trial, **kwargs)
        finally:
            self.join_background_writes()
        if cur is not None and self.args.should_save:
            cur.write_outputs(Path(self.args.output_dir),
                              reference="live" if self.reference_model is not None else "cached")
        if self._resumed_loss is not None:  # the run's loss over all its steps, not only the resumed ones
            loss = self.whole_run_loss(out.training_loss)
            out = type(out)(out.global_step, loss, {**out.metrics, "train_loss": loss})
        return out

    def _claim_run_folder(self) -> None:
        """A fresh run: refuse a folder holding another run's artifacts, unless asked to overwrite them."""
        run = self.run_dir
        taken = run.holds_a_run()
        self.accelerator.wait_for_everyone()  # every process has looked before the main one writes or deletes
        if not taken:
            return
        if not getattr(self.args, "overwrite_output_dir", False):
            record = run.read_run() or {}
            what = ", ".join(filter(None, [
                f"run {record.get('run_id')} ({record.get('method')})" if record else None,
                "a curriculum log" if run.curriculum.is_dir() else None,
                f"{len(run.checkpoints())} checkpoint(s)" if run.checkpoints() else None]))
            raise RunFolderError(
                f"{run.root} holds another run ({what}); a new run would mix its logs with that one's. Resume it "
                "with --resume_from_checkpoint latest, start anew there with --overwrite_output_dir (deletes its "
                "curriculum log, run record and checkpoints), or use another --output_dir")
        if self.args.should_save:
            for p in [run.curriculum, run.doremi, run.analysis, *run.checkpoints()]:
                shutil.rmtree(p, ignore_errors=True)
            run.run_json.unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()

    def _check_same_run(self, ckpt: Path) -> None:
        record = self.run_dir.read_run() or {}
        marker = read_json(ckpt / COMPLETE, "checkpoint marker")
        if record.get("run_id") and marker.get("run_id") and record["run_id"] != marker["run_id"]:
            raise RunFolderError(
                f"{ckpt} belongs to run {marker['run_id']}, but {self.run_dir.run_json} records run "
                f"{record['run_id']}: resuming would continue one run's training with another's log; resume it in its "
                "own output_dir, or start anew with --overwrite_output_dir")

    def _restore_curriculum(self, ckpt: Path) -> None:
        saved = ckpt / CKPT_DIR
        self.curriculum.load(saved)
        self.recorder.clear()
        if (saved / EVENTS).is_file():
            self._events = list(read_json(saved / EVENTS, "curriculum reports"))
        if (saved / PENDING).is_file() and self.args.process_index == 0:  # one copy, gathered later
            self.recorder.load(read_table(saved / PENDING, "pending block losses").to_pydict())
        if self.args.should_save:  # later epochs' logs of the timeline that crashed are redone from here
            for p in self.log_dir.glob("epoch-*.parquet"):
                if int(p.name.split("-")[1]) > self.curriculum.epoch:
                    p.unlink()

    def whole_run_loss(self, resumed_part: float) -> float:
        """Trainer averages the training loss over the steps of this ``train()`` call; add the steps before the
        checkpoint (their summed loss is in its marker)."""
        prior = self._resumed_loss or {}
        start, total = int(prior.get("step", 0)), float(prior.get("loss_sum", 0.0))
        steps = self.state.global_step
        return (total + resumed_part * (steps - start)) / steps if steps > 0 else resumed_part

    def log(self, logs: dict, *args, **kwargs) -> None:
        # the run summary's train_loss covers every step of a resumed run (see whole_run_loss)
        if "train_loss" in logs and getattr(self, "_resumed_loss", None) is not None:
            logs = {**logs, "train_loss": self.whole_run_loss(logs["train_loss"])}
        super().log(logs, *args, **kwargs)

    def _write_run_record(self, resumed: bool) -> None:
        cur = self.curriculum
        previous = self.run_dir.read_run() if resumed else None
        record = {
            "format": "curricula-run/1",
            "run_id": (previous or {}).get("run_id") or new_run_id(),
            "method": cur.name if cur is not None else "none",
            "curriculum": self.curriculum_config.to_dict() if self.curriculum_config is not None else None,
            "seed": self.args.seed,
            "domain_names": self.domain_names,
            "tokenizer": self.tokenizer_identity,
            "lineage": self.lineage,
            "loss_type_note": self.loss_type_note,
            "created": (previous or {}).get("created") or _now(),
        }
        write_json(self.run_dir.run_json, record)
        if cur is not None and hasattr(cur, "plan_info"):
            write_json(self.run_dir.plan_json, cur.plan_info())

    # ---- checkpoints ------------------------------------------------------------------------------------------------

    def save_curriculum_checkpoint(self, checkpoint: str) -> None:
        """The curriculum state and the current epoch's records so far, into ``checkpoint/curriculum`` (collective:
        every process calls it; one folder written atomically by the main process)."""
        if self.curriculum is None:
            return
        if self._state_written_for == os.path.normpath(checkpoint):
            return  # written just before this checkpoint's push
        self.join_background_writes()
        records = self.recorder.gather(self.accelerator) if "block_records" in self.curriculum.needs else None
        if self.args.should_save:
            with atomic_dir(Path(checkpoint) / CKPT_DIR) as tmp:
                self.curriculum.save(tmp)
                write_json(tmp / EVENTS, self._events)
                if records is not None:
                    write_parquet(tmp / PENDING, _records_arrow(sort_records(**records)))
        self._state_written_for = os.path.normpath(checkpoint)

    def finish_checkpoint(self, checkpoint: str) -> None:
        """After Trainer wrote a checkpoint: the curriculum state, then the completeness marker, then the rotation."""
        self.save_curriculum_checkpoint(checkpoint)
        self._state_written_for = None
        self.accelerator.wait_for_everyone()  # every process's RNG state is on disk
        self.mark_checkpoint_complete(checkpoint)
        if self.args.should_save:
            rotate_checkpoints(output_dir=self.args.output_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def mark_checkpoint_complete(self, checkpoint: str) -> None:
        """The marker written last: a checkpoint without it is incomplete (a crash during its save). It also holds
        the training loss summed over every step so far, for the run summary after a resume."""
        if self.args.should_save:
            prior = self._resumed_loss or {}
            loss_sum = float(prior.get("loss_sum", 0.0)) + running_loss_sum(self)
            write_json(Path(checkpoint) / COMPLETE, {"step": self.state.global_step, "run_id": self._run_id(),
                                                     "loss_sum": loss_sum})

    def _run_id(self) -> str | None:
        try:
            return (self.run_dir.read_run() or {}).get("run_id")
        except Exception:  # noqa: BLE001  (the marker must not fail on a damaged run record)
            return None

    # ---- the run's record and card ----------------------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:  # the arguments as JSON (hub tokens masked by to_dict), for the model card
            path = Path(output_dir or self.args.output_dir) / "training_config.json"
            write_json(path, self.args.to_dict(), default=str)

    def create_model_card(self, *args, **kwargs):
        """Trainer's ``push_to_hub`` calls this before uploading ``output_dir``: the curricula card (what Trainer's
        card has, plus the method, plan, weights, replay, LR schedule, analysis and configuration)."""
        from hf_trainer_ext.hub import write_trainer_card

        return write_trainer_card(self, *args, **kwargs)

    @property
    def curriculum_epochs(self) -> int | None:
        """The plan's real number of epochs (the card shows it instead of ``num_train_epochs``)."""
        if self.curriculum is None or not self.curriculum_config.sets_steps:
            return None
        return len(self.curriculum.epoch_steps())


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _class_label_names(ds) -> list[str] | None:
    from curricula.data.pack import domain_names_of

    return domain_names_of(ds)


def pack_for_training(ds, args, model, tokenizer):
    """``args.packing``: ``curricula.data.pack.pack_dataset`` with the trainer's tokenizer and the model's context."""
    import tempfile

    from curricula.data.pack import pack_dataset

    if ds is None:
        return None
    if tokenizer is None and args.dataset_text_field in getattr(ds, "column_names", ()):
        raise ConfigError("packing needs a tokenizer to tokenize the text: pass processing_class=tokenizer")
    spec = None
    if tokenizer is not None:
        folder = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
        if (folder / "tokenizer.json").is_file():
            spec = str(folder)
        else:  # a tokenizer object without a folder: save it for curricula's tokenizer loader
            spec = tempfile.mkdtemp(prefix="curricula-packing-tokenizer-")
            tokenizer.save_pretrained(spec)
    size = args.packing_block_size
    if size is None:
        config = getattr(model, "config", None)
        size = min(int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 1024)), 1024)
    return pack_dataset(ds, tokenizer=spec, block_size=size, text_column=args.dataset_text_field,
                        domain_column=args.domain_column)


def _model_inputs(model) -> list[str]:
    """Dataset columns worth passing to the collator besides input_ids: what the model's forward takes."""
    if model is None:
        return []
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return []
    return [p for p in params if p not in ("input_ids", "kwargs", "labels")] + ["labels"]


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


def load_plan(spec: str | None, params: dict | None = None):
    """A plan from a bundled recipe name or a YAML path (``curricula.recipes``)."""
    if spec is None:
        return None
    from curricula.recipes import load_recipe

    return load_recipe(spec, **(params or {})).plan
