"""``CurriculumTrainer``: ``transformers.Trainer`` with one curriculum, one sampler, one callback, one ``compute_loss``.

Every method is a ``Curriculum`` (``curricula.methods``); the trainer drives its hooks without knowing which it is:

* one Trainer epoch = one curriculum epoch; ``set_initial_training_values`` (``compat.py``) sets the number of epochs
  and ``max_steps`` to the curriculum's, so the LR schedule ends exactly where the run ends;
* ``CurriculumSampler`` yields the curriculum's global batches; after each optimizer step the curriculum observes the
  global batch's per-domain statistics if it needs them; at each epoch end ``PhaseBoundary`` gathers the epoch's
  per-block losses, writes the curriculum log and lets the curriculum decide the next epoch;
* ``compute_loss`` runs one cross-entropy on the training logits and derives from it the backpropagated loss
  (Trainer's normalisation), each block's mean loss, the per-domain step statistics and, when the curriculum gives
  per-domain loss weights (Group DRO), the weighted loss;
* a resume restores the curriculum from its checkpoint (``CheckpointIO``) and its data stream starts at the resumed
  step (``batches(epoch, start)``): nothing is replayed.

What is not the loss or the seam lives in small objects the trainer holds: ``RunFolder`` (one run per folder, its
record), ``CheckpointIO`` (the curriculum's part of checkpoints, the completeness marker), ``PhaseBoundary`` (the
epoch boundary, node-shared state, background writes), ``DivergenceMonitor`` and ``TaskEvaluator``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from curricula.errors import ConfigError
from curricula.logs import LOG_DIR
from curricula.methods.seam import Curriculum, DataInfo, MethodConfig, RunInfo
from curricula.run_layout import checkpoint_missing, resolve_resume, write_json
from hf_trainer_ext.boundary import BackgroundWriter, PhaseBoundary, ReportLog
from hf_trainer_ext.callbacks import CurriculumCallback
from hf_trainer_ext.checkpoints import CheckpointIO
from hf_trainer_ext.compat import TrainerCompat, running_loss_sum
from hf_trainer_ext.data import (BLOCK_COLUMNS, BlockCollator, BlockDataset, CurriculumDataError, check_block_dataset,
                                 check_collator, class_label_names, model_inputs, pack_for_training)
from hf_trainer_ext.divergence import DivergenceMonitor
from hf_trainer_ext.losses import block_mean_losses, causal_lm_token_losses
from hf_trainer_ext.recorder import BlockLossRecorder, StepStatsAccumulator, domain_perplexities, perplexity
from hf_trainer_ext.run_folder import RunFolder
from hf_trainer_ext.sampler import CurriculumSampler
from hf_trainer_ext.task_eval import TaskEvaluator

logger = logging.getLogger(__name__)


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
            pack = lambda ds: pack_for_training(ds, args, model, kw.get("processing_class"))  # noqa: E731
            train_dataset = pack(train_dataset)
            ev = kw.get("eval_dataset")
            if ev is not None:
                kw["eval_dataset"] = {k: pack(v) for k, v in ev.items()} if isinstance(ev, dict) else pack(ev)
        if packed is not None:
            train_dataset = packed.train if train_dataset is None else train_dataset
            domain_names = packed.domain_names if domain_names is None else domain_names
            tokenizer_identity = packed.tokenizer if tokenizer_identity is None else tokenizer_identity
        config = self._method_config(args, curriculum)
        if config is not None:  # before anything else: the message says how to get block columns
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
        self.block_logging = bool(getattr(args, "log_block_losses", True) and has_blocks)
        if args is not None:  # Trainer pickles args into the training_args.bin that push_to_hub() uploads
            from hf_trainer_ext.hub import protect_hub_token

            protect_hub_token(args)
        domain_ids = None
        if self.block_logging:
            domain_ids = np.asarray(train_dataset.with_format("numpy")["domain_id"])
            domain_names = class_label_names(train_dataset) if domain_names is None else domain_names
            train_dataset = BlockDataset(train_dataset, inputs=model_inputs(model), checked=config is not None)
            if data_collator is not None and not isinstance(data_collator, BlockCollator):
                check_collator(data_collator, train_dataset)
                data_collator = BlockCollator(data_collator)
            data_collator = data_collator or BlockCollator()
        elif config is not None:
            raise CurriculumDataError("a curriculum needs training data with block_id and domain_id (curricula pack)")
        super().__init__(model, args, data_collator, train_dataset, *a, **kw)
        n_domains = int(domain_ids.max()) + 1 if domain_ids is not None and len(domain_ids) else 0
        self.domain_names = list(domain_names) if domain_names is not None else [str(d) for d in range(n_domains)]
        self.tokenizer_identity, self.lineage = tokenizer_identity, list(lineage or [])
        self.curriculum_config: MethodConfig | None = config
        self.curriculum: Curriculum | None = self._build_curriculum(config, domain_ids) if config else None
        self._wire(max(n_domains, len(self.domain_names)), reference_losses, reference_model)

    def _method_config(self, args, curriculum) -> MethodConfig | None:
        config = getattr(args, "curriculum_config", None)
        if curriculum is None:
            return config
        if config is not None:
            raise ConfigError(f"a curriculum is given twice: curriculum={type(curriculum).__name__} and "
                              f"args.curriculum={args.curriculum!r} / domain_weights; give one")
        if not isinstance(curriculum, MethodConfig):
            raise ConfigError(f"curriculum= takes a curricula MethodConfig (e.g. LFRConfig, MixtureConfig), got "
                              f"{type(curriculum).__name__}; a recipe name goes to CurriculumTrainingArguments")
        return curriculum

    def _build_curriculum(self, config: MethodConfig, domain_ids: np.ndarray) -> Curriculum:
        args = self.args
        workers = args.dataloader_num_workers
        prefetch = (args.dataloader_prefetch_factor or 2) if workers > 0 else 0
        lookahead = 2 + math.ceil(workers * prefetch / args.gradient_accumulation_steps)
        data = DataInfo(domain_ids, self.domain_names, tokenizer=self.tokenizer_identity)
        run = RunInfo(self.global_batch, args.max_steps if args.max_steps > 0 else None,
                      getattr(args, "block_order_seed", args.seed), lookahead=lookahead)
        return config.build(data, run)

    def _wire(self, n_domains: int, reference_losses, reference_model) -> None:
        """The objects the trainer holds besides the curriculum (see the module docstring)."""
        args, cur = self.args, self.curriculum
        needs = cur.needs if cur is not None else frozenset()
        # per-block records are kept only when the curriculum consumes them at its boundaries
        self.recorder = BlockLossRecorder(n_domains, keep_records="block_records" in needs) if self.block_logging \
            else None
        self.eval_recorder: BlockLossRecorder | None = None
        self.reference_model = None
        if "reference" in needs:
            self._attach_reference(reference_losses or getattr(args, "reference_losses", None), reference_model)
        elif reference_losses is not None or reference_model is not None:
            raise ConfigError(f"a reference is given but method {cur.name if cur else None!r} does not use one; drop "
                              "reference_losses/reference_model")
        self._step_stats = (StepStatsAccumulator(len(self.domain_names), args.device, "reference" in needs)
                            if "step_stats" in needs else None)
        self._loss_weights: torch.Tensor | None = None
        self._step_report_metrics: dict = {}
        log_dir = Path(args.output_dir) / LOG_DIR
        self.run_folder = RunFolder(args.output_dir, self.accelerator, args.should_save)
        self.reports = ReportLog(log_dir / cur.reports_file if cur is not None and args.should_save else None)
        self.writer = BackgroundWriter()
        vocab = getattr(getattr(self.model, "config", None), "vocab_size", None)
        self.divergence = DivergenceMonitor(getattr(args, "nonfinite_policy", "stop"),
                                            getattr(args, "max_nonfinite_share", 1.0), getattr(args, "max_loss", None),
                                            vocab, last_checkpoint=self._last_complete_checkpoint)
        self.checkpoints = CheckpointIO(cur, self.recorder, self.accelerator, args.should_save, args.output_dir,
                                        self.reports, self.writer, self.run_folder.run_id)
        self.boundary = (PhaseBoundary(cur, self.recorder, self.accelerator, log_dir, args.should_save,
                                       getattr(args, "share_index_table", True), str(Path(args.output_dir).resolve()),
                                       self.divergence.check, self.reports, self.writer) if cur is not None else None)
        self.tasks = TaskEvaluator(getattr(args, "eval_tasks", None), getattr(args, "eval_tokenizer", None),
                                   args.per_device_eval_batch_size)
        if self.block_logging:
            self.add_callback(CurriculumCallback(self))

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

    @property
    def global_batch(self) -> int:
        return self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps

    # ---- the seam, driven from Trainer's loop (compat.py and the callback call these) --------------------------------

    def extra_input_columns(self) -> tuple[str, ...]:
        return BLOCK_COLUMNS

    def curriculum_sampler(self):
        self._sampler = CurriculumSampler(self.curriculum) if self.curriculum is not None else None
        return self._sampler

    def resume_position(self, global_step: int) -> tuple[int, int]:
        """(Trainer epochs done, micro-batches already trained in the current one) for a resumed global step."""
        cur = self.curriculum
        epoch, done = cur.position(global_step)
        if epoch != cur.epoch:  # saved at the last step of an epoch, before its boundary ran
            self.finish_epoch()
        return epoch, 0 if self.args.ignore_data_skip else done * self.args.gradient_accumulation_steps

    def start_stream_at(self, dataloader, micro_batches: int):
        """A resume inside an epoch: the curriculum's stream starts at the resumed step (no batch is replayed)."""
        self._sampler.start = micro_batches // self.args.gradient_accumulation_steps
        return dataloader

    def observe_step(self) -> None:
        """After an optimizer step (every process): the global batch's per-domain statistics to the curriculum."""
        if self._step_stats is None:
            return
        report = self.curriculum.observe_step(self._step_stats.reduce(self.accelerator, self.state.global_step))
        self._refresh_loss_weights()
        self._step_report_metrics.update(self.reports.handle(report))  # logged with the next logging step's

    def _refresh_loss_weights(self) -> None:
        w = self.curriculum.loss_weights() if self.curriculum is not None else None
        self._loss_weights = None if w is None else torch.as_tensor(w, dtype=torch.float32, device=self.args.device)

    def finish_epoch(self) -> None:
        """The boundary (every process): gather, log, let the curriculum decide the next epoch."""
        metrics = self.boundary.run()
        if metrics:
            self.log_extra(metrics)

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
            window = self.recorder.window(self.accelerator)
            for d, v in window["domains"].items():
                logs[f"train_ppl/{self.domain_names[d] if d < len(self.domain_names) else d}"] = perplexity(v)
            n = window["finite"] + window["nonfinite"]
            self.divergence.check(f"the steps up to {self.state.global_step}", int(n), int(window["nonfinite"]),
                                  window["loss_sum"] / window["finite"] if window["finite"] else float("nan"))
        if self.curriculum is not None:
            logs.update(self.curriculum.step_metrics())
        logs.update(self._step_report_metrics)
        self._step_report_metrics = {}
        if logs:
            self.log_extra(logs)

    # ---- training ---------------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """Trainer's ``train`` with a guarded run folder and verified checkpoints: ``resume_from_checkpoint`` is a
        path, ``True`` or ``"latest"`` (the newest complete checkpoint); a fresh run refuses a folder holding another
        run unless ``overwrite_output_dir``."""
        args, cur = self.args, self.curriculum
        ckpt = resolve_resume(args.output_dir, resume_from_checkpoint, curriculum=cur is not None, warn=logger.warning)
        if self.loss_type_note and self.is_world_process_zero():
            logger.warning(self.loss_type_note)
        self.reports.events, self.checkpoints.resumed_marker = [], None
        if ckpt is None:
            self.run_folder.claim(getattr(args, "overwrite_output_dir", False))
        else:
            self.run_folder.check_same_run(ckpt)
            self.checkpoints.restore(ckpt, args.process_index)
        if cur is not None:
            if ckpt is None:
                self.reports.handle(cur.start_epoch(0))
            cur.open_logs(Path(args.output_dir) if args.should_save else None,
                          int((self.checkpoints.resumed_marker or {}).get("step", 0)))
            self._refresh_loss_weights()
            # one epoch's records on this process, allocated before training allocates its large buffers
            if "block_records" in cur.needs:
                share = max(cur.epoch_steps()) * self.global_batch // max(args.world_size, 1) + self.global_batch
                self.recorder.reserve(share, args.device)
        self._write_run_record(resumed=ckpt is not None)
        try:
            out = super().train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None, trial=trial, **kwargs)
        finally:
            self.writer.join()
        if cur is not None and args.should_save:
            cur.write_outputs(Path(args.output_dir), reference="live" if self.reference_model is not None else "cached")
        if self.checkpoints.resumed_marker is not None:  # the run's loss over all its steps, not only the resumed ones
            loss = self.checkpoints.whole_run_loss(out.training_loss, self.state.global_step)
            out = type(out)(out.global_step, loss, {**out.metrics, "train_loss": loss})
        return out

    def log(self, logs: dict, *args, **kwargs) -> None:
        # the run summary's train_loss covers every step of a resumed run (see CheckpointIO.whole_run_loss)
        resumed = getattr(self, "checkpoints", None) is not None and self.checkpoints.resumed_marker is not None
        if "train_loss" in logs and resumed:
            logs = {**logs, "train_loss": self.checkpoints.whole_run_loss(logs["train_loss"], self.state.global_step)}
        super().log(logs, *args, **kwargs)

    def _write_run_record(self, resumed: bool) -> None:
        cur = self.curriculum
        self.run_folder.write_record(
            resumed, method=cur.name if cur is not None else "none",
            curriculum=self.curriculum_config.to_dict() if self.curriculum_config is not None else None,
            seed=self.args.seed, domain_names=self.domain_names, tokenizer=self.tokenizer_identity,
            lineage=self.lineage, loss_type_note=self.loss_type_note)
        plan = cur.plan_info() if cur is not None else None
        if plan is not None and self.args.should_save:
            write_json(self.run_folder.dir.plan_json, plan)

    # ---- checkpoints (compat.py calls these from Trainer's _save_checkpoint) -----------------------------------------

    def save_curriculum_checkpoint(self, checkpoint: str) -> None:
        self.checkpoints.save(checkpoint, self.state.global_step)

    def mark_checkpoint_complete(self, checkpoint: str) -> None:
        self.checkpoints.mark_complete(checkpoint, self.state.global_step, running_loss_sum(self))

    def finish_checkpoint(self, checkpoint: str) -> None:
        """After Trainer wrote a checkpoint: the curriculum state, the completeness marker, then the rotation."""
        self.checkpoints.finish(checkpoint, self.state.global_step, running_loss_sum(self))
        if self.args.should_save:
            rotate_checkpoints(output_dir=self.args.output_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def _last_complete_checkpoint(self) -> Path | None:
        complete = [p for p in self.run_folder.dir.checkpoints()
                    if not checkpoint_missing(p, self.curriculum is not None)]
        return complete[-1] if complete else None

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
        rec = self.recorder if model.training else self.eval_recorder
        if rec is not None:
            rec.add(block_id, domain_id, block_mean_losses(tok.detach(), valid), self.state.global_step + 1)
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

    # ---- evaluation -------------------------------------------------------------------------------------------------

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluation plus, from the same forward passes, per-domain perplexity, its uniform average and
        its worst case (DoReMi's metrics), logged through ``Trainer.log``.

        Evaluation never moves the training RNG: its DataLoader draws a seed from the global generator, which would
        change the dropout masks after an evaluation, and a run resumed from a checkpoint saved just before an
        epoch-end evaluation (which it does not repeat) would then differ from the uninterrupted run."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and self.args.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
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
            extra.update(self.tasks.scores(self.accelerator.unwrap_model(self.model), metric_key_prefix))
            if extra:
                metrics.update(extra)
                self.log_extra(extra)
            return metrics

    # ---- LR schedule, saving, the card ------------------------------------------------------------------------------

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """A curricula schedule (``args.lr_schedule``: warmup-cosine, re-warm stages, infinite with on-demand anneal)
        in place of ``lr_scheduler_type``; it lives in the scheduler's state_dict, so a resume restores the exact LR."""
        if getattr(self.args, "lr_schedule", None) is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        from hf_trainer_ext.schedulers import install_schedule

        self.lr_scheduler = install_schedule(self, optimizer if optimizer is not None else self.optimizer,
                                             num_training_steps)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:  # the arguments as JSON (hub tokens masked by to_dict), for the model card
            write_json(Path(output_dir or self.args.output_dir) / "training_config.json", self.args.to_dict(),
                       default=str)

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

