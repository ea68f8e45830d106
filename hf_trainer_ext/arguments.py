"""``CurriculumTrainingArguments``: ``TrainingArguments`` plus the curriculum."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class CurriculumTrainingArguments(TrainingArguments):
    curriculum: str | None = field(
        default=None,
        metadata={"help": "A plan: a bundled recipe name (e.g. 'lfr', 'lfr_reps5') or a plan YAML path. "
                          "None trains exactly like Trainer."},
    )
    curriculum_params: dict | str | None = field(
        default=None, metadata={"help": "Plan parameters, e.g. {'reps': 5} (JSON string on the command line)."}
    )
    curriculum_seed: int | None = field(
        default=None, metadata={"help": "Seed of the block order (default: seed)."}
    )
    domain_weights: str | None = field(
        default=None,
        metadata={"help": "Sample every global batch from the domains in these proportions (exact counts): a JSON "
                          "list in domain-id order, a JSON object {domain: weight}, a weights JSON file "
                          "(e.g. DoReMi's domain_weights.json), or 'uniform'. Needs max_steps."},
    )
    lr_schedule: str | None = field(
        default=None,
        metadata={"help": "A curricula LR schedule (curricula.curriculum.schedules) as JSON or a YAML/JSON file, e.g. "
                          "'{\"type\": \"infinite\", \"constant_lr\": 3e-4, ...}'; replaces lr_scheduler_type. "
                          "max_lr and total_steps default to learning_rate and the run's steps."},
    )
    anneal_at: int | None = field(
        default=None,
        metadata={"help": "Start an infinite schedule's anneal at this step. Without it, creating the file "
                          "OUTPUT_DIR/ANNEAL (empty: now; or holding a step) starts it on demand."},
    )
    eval_tasks: str | None = field(
        default=None,
        metadata={"help": "Zero-shot tasks scored at every evaluation: comma-separated task JSONL paths or names "
                          "registered with curricula.evaluation.tasks (needs eval_tokenizer)."},
    )
    eval_tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer spec for eval_tasks (e.g. the packed data's: gpt2 or a folder)."}
    )
    log_block_losses: bool = field(
        default=True,
        metadata={"help": "Record every trained block's loss from the training forward pass (the curriculum log) "
                          "and report per-domain training perplexity."},
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.curriculum_params, str):
            import json

            self.curriculum_params = json.loads(self.curriculum_params) if self.curriculum_params else None
        if self.curriculum is not None and self.max_steps > 0:
            raise ValueError(
                f"max_steps={self.max_steps} conflicts with curriculum={self.curriculum!r}: a curriculum's length is "
                "its plan (epochs per phase); leave max_steps unset"
            )
        if self.curriculum is not None and self.domain_weights is not None:
            raise ValueError(
                "curriculum and domain_weights are two ways of choosing the data; use one of them per run"
            )
        if self.domain_weights is not None and self.max_steps <= 0:
            raise ValueError("a weighted domain mixture has no natural epoch: set max_steps (the number of optimizer steps)")
        if isinstance(self.lr_schedule, str) and self.lr_schedule:
            import json
            from pathlib import Path

            import yaml

            text = self.lr_schedule
            if not text.lstrip().startswith("{"):  # not inline JSON (which can be too long for a file name): a
                try:                                # file, else inline YAML
                    is_file = Path(text).is_file()
                except OSError:  # ENAMETOOLONG: inline YAML longer than a file name may be
                    is_file = False
                text = Path(text).read_text() if is_file else text
            try:  # JSON first: YAML 1.1 reads 2e-3 as a string
                self.lr_schedule = json.loads(text)
            except json.JSONDecodeError:
                self.lr_schedule = yaml.safe_load(text)
        if self.eval_tasks and not self.eval_tokenizer:
            raise ValueError("eval_tasks needs eval_tokenizer: the tokenizer the model was trained with (e.g. 'gpt2')")
        if self.curriculum is not None and not self.log_block_losses:
            raise ValueError("a curriculum needs the block losses: keep log_block_losses=True")
