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
from pathlib import Path

import torch
from transformers import Trainer

from curricula.logs import LOG_DIR
from curricula.methods.seam import Curriculum, DataInfo, MethodConfig, Report
from curricula.run_layout import write_json
from hf_trainer_ext.arguments import method_config_of, run_info
from hf_trainer_ext.boundary import BackgroundWriter, PhaseBoundary, ReportLog
from hf_trainer_ext.callbacks import CurriculumCallback
from hf_trainer_ext.checkpoints import CheckpointIO
from hf_trainer_ext.compat import TrainerCompat, running_loss_sum
from hf_trainer_ext.data import fix_loss_type, init_with_block_data
from hf_trainer_ext.divergence import DivergenceMonitor
from hf_trainer_ext.domain_probe import DomainLossProbe
from hf_trainer_ext.hub import protect_hub_token, write_trainer_card
from hf_trainer_ext.losses import block_mean_losses, causal_lm_token_losses
from hf_trainer_ext.recorder import BlockLossRecorder, StepStatsAccumulator, domain_perplexities
from hf_trainer_ext.reference import attach_reference
from hf_trainer_ext.run_folder import RunFolder
from hf_trainer_ext.sampler import CurriculumSampler
from hf_trainer_ext.schedulers import install_schedule
from hf_trainer_ext.task_eval import TaskEvaluator
from hf_trainer_ext.trl import check_trainer_class
from hf_trainer_ext.watchdog import WatchdogCallback

logger = logging.getLogger(__name__)


class CurriculumMixin(TrainerCompat):
    """The curriculum, for any ``transformers.Trainer`` class (``CurriculumTrainer``; ``with_curriculum(SFTTrainer)``).
    Extra keywords: ``domain_names`` (default: the ``domain_id`` ClassLabel's names, or the packed data's),
    ``curriculum`` (a ``MethodConfig``, instead of ``args.curriculum``), ``packed`` (a ``PackedData``: training data,
    domain names and tokenizer in one), ``reference_losses`` / ``reference_model`` (for methods that need one;
    ``live_reference``: a forward each step instead of one scoring, default: whichever costs less),
    ``tokenizer_identity`` (stamped on weights files), ``lineage`` (the runs this one builds on, in ``run.json``),
    ``mixing_eval_dataset`` (held-out blocks for methods that learn from validation loss; default: eval_dataset)."""

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, *a, domain_names=None,
                 curriculum: MethodConfig | None = None, packed=None, reference_losses=None, reference_model=None,
                 tokenizer_identity: dict | None = None, lineage: list[dict] | None = None, mixing_eval_dataset=None,
                 live_reference: bool | None = None, **kw):
        config, self.loss_type_note = method_config_of(args, curriculum), fix_loss_type(model)
        protect_hub_token(args)  # Trainer pickles args into the training_args.bin that push_to_hub() uploads
        data = init_with_block_data(self, super().__init__, (model, args, data_collator, train_dataset, *a), kw,
                                    packed=packed, domain_names=domain_names, tokenizer_identity=tokenizer_identity,
                                    config=config)  # the base class's __init__ runs in there (SFTTrainer: its data first)
        self.block_logging, self.domain_names, self.lineage = data.block_logging, data.domain_names, list(lineage or [])
        self.tokenizer_identity, self.curriculum_config = data.tokenizer_identity, config
        self.curriculum: Curriculum | None = config.build(
            DataInfo(data.domain_ids, self.domain_names, tokenizer=self.tokenizer_identity),
            run_info(self.args, self.global_batch)) if config is not None else None
        self._stream = data.stream and data.stream.bind(self.curriculum, reference_losses)
        self.probe = DomainLossProbe.for_trainer(self, mixing_eval_dataset)
        self._wire(max(data.n_domains, len(self.domain_names)), reference_losses, (reference_model, live_reference))

    def _wire(self, n_domains: int, reference_losses, reference_model) -> None:
        """The objects the trainer holds besides the curriculum (see the module docstring)."""
        args, cur = self.args, self.curriculum
        needs = cur.needs if cur is not None else frozenset()
        # per-block records are kept only when the curriculum consumes them at its boundaries
        self.recorder = BlockLossRecorder(n_domains, keep_records="block_records" in needs) if self.block_logging \
            else None
        self.eval_recorder: BlockLossRecorder | None = None
        self.reference_model = attach_reference(self, reference_losses or getattr(args, "reference_losses", None),
                                                *reference_model)
        self._step_stats = (StepStatsAccumulator(len(self.domain_names), args.device, "reference" in needs)
                            if "step_stats" in needs else None)
        self._loss_weights, self._step_report_metrics = None, {}
        self.run_folder = RunFolder(args.output_dir, self.accelerator, args.should_save)
        self.reports = ReportLog(Path(args.output_dir) / LOG_DIR / cur.reports_file
                                 if cur is not None and args.should_save else None)
        self.writer = BackgroundWriter()
        self.divergence = DivergenceMonitor.from_args(args, self.model, lambda: self.run_folder.last_complete(cur))
        self.checkpoints = CheckpointIO(cur, self.recorder, self.accelerator, args, self.reports, self.writer,
                                        self.run_folder.run_id, stream=self._stream, probe=self.probe)
        self.boundary = PhaseBoundary(cur, self.recorder, self.accelerator, args, self.divergence.check, self.reports,
                                      self.writer) if cur is not None else None
        self.tasks, self.watchdog = TaskEvaluator.from_args(args), WatchdogCallback.attach(self)  # stalled ranks
        if self.block_logging:
            self.add_callback(CurriculumCallback(self))

    @property
    def global_batch(self) -> int:
        return self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps

    # ---- the seam, driven from Trainer's loop (compat.py and the callback call these) --------------------------------

    def curriculum_sampler(self):
        self._sampler = CurriculumSampler(self.curriculum) if self.curriculum is not None else None
        return self._sampler

    def resume_position(self, global_step: int) -> tuple[int, int]:
        """(Trainer epochs done, micro-batches already trained in the current one) for a resumed global step."""
        epoch, done = self.curriculum.position(global_step)
        self.resumed_at_boundary = epoch != self.curriculum.epoch  # saved at an epoch's last step, before its
        if self.resumed_at_boundary:  # boundary (and its epoch-end evaluation: the callback runs it at on_train_begin)
            self.finish_epoch()
        return epoch, 0 if self.args.ignore_data_skip else done * self.args.gradient_accumulation_steps

    def observe_step(self) -> None:
        """After an optimizer step (every process): the global batch's per-domain statistics to the curriculum, and the
        held-out per-domain loss when it asks for it."""
        cur, step = self.curriculum, self.state.global_step
        report = cur.observe_step(self._step_stats.reduce(self.accelerator, step)) if self._step_stats else None
        if self.probe is not None and cur.wants_eval(step):
            report = Report().merge(report).merge(cur.observe_eval(self.probe.measure(self.model, step)))
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

    # ---- training ---------------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """Trainer's ``train`` with a guarded run folder and verified checkpoints: ``resume_from_checkpoint`` is a
        path, ``True`` or ``"latest"`` (the newest complete checkpoint); a fresh run refuses a folder holding another
        run unless ``overwrite_output_dir``."""
        args, cur = self.args, self.curriculum
        ckpt = self.run_folder.resolve_resume(resume_from_checkpoint, cur is not None, logger.warning)
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
            if "block_records" in cur.needs:  # before training allocates its large buffers
                self.recorder.reserve_epoch(max(cur.epoch_steps()), self.global_batch, args.world_size, args.device)
        self.run_folder.write_record(ckpt is not None, self)
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
        # a training log (every process logs: the window is all-reduced) gets the per-domain training perplexity
        # since the last one, checked for divergence, and the curriculum's values; the run summary's train_loss
        # covers every step of a resumed run (see CheckpointIO.whole_run_loss)
        if "loss" in logs and getattr(self, "recorder", None) is not None:
            window, (n, bad, mean) = self.recorder.perplexity_window(self.accelerator, self.domain_names)
            self.divergence.check(f"the steps up to {self.state.global_step}", n, bad, mean)
            steps = self.curriculum.step_metrics() if self.curriculum is not None else {}
            logs, self._step_report_metrics = {**logs, **window, **steps, **self._step_report_metrics}, {}
        if "train_loss" in logs and getattr(self, "checkpoints", None) and self.checkpoints.resumed_marker:
            logs = {**logs, "train_loss": self.checkpoints.whole_run_loss(logs["train_loss"], self.state.global_step)}
        super().log(logs, *args, **kwargs)

    # ---- checkpoints (compat.py calls these from Trainer's _save_checkpoint) -----------------------------------------

    def save_curriculum_checkpoint(self, checkpoint: str) -> None:
        self.checkpoints.save(checkpoint, self.state.global_step)

    def mark_checkpoint_complete(self, checkpoint: str) -> None:
        self.checkpoints.mark_complete(checkpoint, self.state.global_step, running_loss_sum(self))

    def finish_checkpoint(self, checkpoint: str) -> None:
        """After Trainer wrote a checkpoint: the curriculum state, the completeness marker, then the rotation."""
        self.checkpoints.finish(checkpoint, self.state.global_step, running_loss_sum(self),
                                rotate=(self.args.save_total_limit, self.state.best_model_checkpoint))

    # ---- loss -------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        block_id, domain_id, ref = (inputs.pop(k, None) for k in ("block_id", "domain_id", "ref_loss"))
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
        its worst case (DoReMi's metrics). It never moves the training RNG (its DataLoader draws a seed from the
        global generator: a resume that skips an epoch-end evaluation would otherwise differ)."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and self.args.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self.watchdog.phase("evaluate"):
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
        self.lr_scheduler, self._created_lr_scheduler = install_schedule(self, optimizer, num_training_steps), True
        return self.lr_scheduler

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:  # the arguments as JSON (hub tokens masked by to_dict), for the model card
            write_json(Path(output_dir or self.args.output_dir) / "training_config.json", self.args.to_dict(),
                       default=str)

    def create_model_card(self, *args, **kwargs):
        """Trainer's ``push_to_hub`` calls this before uploading ``output_dir``: the curricula card (what Trainer's
        card has, plus the method, plan, weights, replay, LR schedule, analysis and configuration)."""
        return write_trainer_card(self, *args, **kwargs)

    @property
    def curriculum_epochs(self) -> int | None:
        """The plan's real number of epochs (the card shows it instead of ``num_train_epochs``)."""
        if self.curriculum is None or not self.curriculum_config.sets_steps:
            return None
        return len(self.curriculum.epoch_steps())


class CurriculumTrainer(CurriculumMixin, Trainer):
    """``transformers.Trainer`` plus a curriculum (see ``CurriculumMixin`` for the extra keywords)."""


def with_curriculum(trainer_class: type) -> type:
    """``trainer_class`` (a ``transformers.Trainer`` subclass you cannot replace, e.g. TRL's ``SFTTrainer``) with the
    curriculum: the same keywords and behaviour as ``CurriculumTrainer``, the class's own preprocessing first."""
    if not (isinstance(trainer_class, type) and issubclass(trainer_class, Trainer)):
        from curricula.errors import ConfigError

        raise ConfigError(f"with_curriculum takes a transformers.Trainer subclass, got {trainer_class!r}")
    if issubclass(trainer_class, CurriculumMixin):
        return trainer_class
    check_trainer_class(trainer_class)  # of TRL's trainers, SFTTrainer (hf_trainer_ext/trl.py)
    return type(f"Curriculum{trainer_class.__name__}", (CurriculumMixin, trainer_class),
                {"__module__": trainer_class.__module__, "__doc__": f"{trainer_class.__name__} with a curriculum."})
