"""``CurriculumTrainingArguments``: ``TrainingArguments`` plus the curriculum, resolved and checked when built.

Every curriculum argument is parsed once, here (``__post_init__``), before any data is touched: a recipe name or
file becomes its method's config, JSON/YAML strings become values, conflicts and ignored arguments are errors that
name the flag. Typed values are accepted as well as strings (a ``MethodConfig``, a list or mapping of weights, a
schedule dict or ``Schedule``); the resolved method config is ``args.curriculum_config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from curricula.errors import ConfigError


@dataclass
class CurriculumTrainingArguments(TrainingArguments):
    curriculum: str | None = field(
        default=None,
        metadata={"help": "The method: a bundled recipe name (lfr, lfr_reps5, ...), a recipe YAML path, or inline "
                          "YAML/JSON with a `method:` key (a plan with `phases:` is LFR). Default: none (trains "
                          "exactly like Trainer, still logging per-block losses and per-domain perplexity)."},
    )
    curriculum_params: str | None = field(
        default=None,
        metadata={"help": "Recipe parameters as a JSON or YAML mapping, e.g. '{\"reps\": 5}' or '{reps: 5}' (an LFR "
                          "plan's params; another method's keys)."},
    )
    curriculum_seed: int | None = field(default=None, metadata={"help": "Seed of the block order (default: seed)."})
    domain_weights: str | None = field(
        default=None,
        metadata={"help": "Domain mixture weights: 'uniform', 'token_proportional', a JSON list in domain-id order, a "
                          "JSON object {domain: weight}, or a weights JSON file (e.g. DoReMi's domain_weights.json). "
                          "Alone: every global batch drawn in these proportions (needs max_steps); with an LFR "
                          "curriculum: the plan runs over this mixture; group_dro: its sampling weights; "
                          "doremi_online: its initial weights."},
    )
    lr_schedule: str | None = field(
        default=None,
        metadata={"help": "A curricula LR schedule (curricula.optim.schedules) as JSON/YAML or a YAML/JSON file, "
                          "e.g. '{\"type\": \"infinite\", \"constant_lr\": 3e-4, ...}'; replaces lr_scheduler_type. "
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
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start a new run in an output_dir that holds another run's curriculum log, run record or "
                          "checkpoints, deleting them (without it such a folder is refused unless you resume)."},
    )
    nonfinite_policy: str = field(
        default="stop",
        metadata={"help": "What to do when training losses become non-finite (NaN/inf) or explode: 'stop' (raise a "
                          "clear error at the first epoch end or logging step where more than max_nonfinite_share of "
                          "the block losses are non-finite, or the mean loss exceeds max_loss) or 'warn'."},
    )
    max_nonfinite_share: float = field(
        default=0.01, metadata={"help": "Share of non-finite block losses (in an epoch or logging window) tolerated."}
    )
    max_loss: float | None = field(
        default=None, metadata={"help": "Stop (or warn) when an epoch's or logging window's mean block loss exceeds this "
                                        "(default: 3 x ln(vocabulary size), far worse than uniform guessing; inf: off)."}
    )
    packing: bool = field(
        default=False,
        metadata={"help": "Pack the training (and evaluation) dataset in the trainer, like TRL's packing: text (or "
                          "tokenized) documents become dense, domain-pure blocks with block_id/domain_id "
                          "(curricula.data.pack.pack_dataset, the same code as `curricula pack`); needs the tokenizer "
                          "as processing_class."},
    )
    packing_block_size: int | None = field(
        default=None, metadata={"help": "Tokens per packed block (default: the model's context, at most 1024)."}
    )
    dataset_text_field: str = field(default="text", metadata={"help": "The text column packing tokenizes."})
    domain_column: str | None = field(
        default=None, metadata={"help": "The column naming each document's domain, for packing (blocks stay within "
                                        "a domain; the names reach the logs as train_ppl/<domain>)."}
    )
    share_index_table: bool = field(
        default=True,
        metadata={"help": "With several processes, one process per node updates the LFR index table at each boundary "
                          "and the node's processes memory-map it (node-local file in CURRICULA_SHARED_DIR, default "
                          "/dev/shm) instead of each holding a private copy."},
    )
    mixing_eval_blocks: int | None = field(
        default=None,
        metadata={"help": "For methods that learn from per-domain validation loss (aioli): score at most this many "
                          "held-out blocks at each of their measurements (default: all of eval_dataset)."},
    )
    reference_losses: str | None = field(
        default=None,
        metadata={"help": "Cached reference losses (a folder written by score_reference / curricula doremi) for "
                          "methods that need a reference: group_dro, doremi_online."},
    )
    stall_timeout: float | None = field(
        default=None,
        metadata={"help": "Seconds a multi-process run may go without progress (a step, micro-step, evaluation batch, "
                          "log or save) before its waiting processes end themselves with exit code 75, naming the "
                          "stopped or stuck rank(s), the step and the last complete checkpoint (docs/fault_tolerance.md"
                          "). The first step, checkpoint saves, evaluations and epoch ends get max(stall_timeout, "
                          "ddp_timeout). Must exceed the slowest step and be below ddp_timeout (gloo's own timeout "
                          "names no rank). Default: min(600, ddp_timeout / 2) (off when under 5 s); 0: off."},
    )

    def __post_init__(self):
        super().__post_init__()
        self.curriculum_config = resolve_curriculum(self)
        if self.lr_schedule is not None:
            self.lr_schedule = parse_schedule(self.lr_schedule)
        if self.eval_tasks and not self.eval_tokenizer:
            raise ConfigError("eval_tasks needs eval_tokenizer: the tokenizer the model was trained with (e.g. 'gpt2')")
        if self.curriculum_config is not None and not self.log_block_losses:
            raise ConfigError("a curriculum needs the block losses: keep log_block_losses=True")
        if self.curriculum_seed is not None and self.curriculum_config is None:
            raise ConfigError("--curriculum_seed is given without a curriculum: it would be ignored; drop it or name "
                              "the method (--curriculum ..., --domain_weights ...)")
        if self.anneal_at is not None and (self.lr_schedule or {}).get("type") not in ("infinite", "offset", "stages"):
            raise ConfigError(f"--anneal_at {self.anneal_at} needs an LR schedule with an anneal phase "
                              "(--lr_schedule with type infinite); with lr_scheduler_type it would be ignored")
        if not self.packing and (self.packing_block_size is not None or self.domain_column is not None):
            raise ConfigError("--packing_block_size / --domain_column describe in-trainer packing: add --packing "
                              "true (or drop them)")
        if self.nonfinite_policy not in ("stop", "warn"):
            raise ConfigError(f"--nonfinite_policy {self.nonfinite_policy!r}: use 'stop' or 'warn'")
        if not 0.0 <= self.max_nonfinite_share < 1.0:
            raise ConfigError(f"--max_nonfinite_share {self.max_nonfinite_share}: a share in [0, 1)")
        if self.stall_timeout not in (None, 0) and not 5 <= self.stall_timeout < self.ddp_timeout:
            raise ConfigError(f"--stall_timeout {self.stall_timeout}: seconds from 5 to below --ddp_timeout "
                              f"({self.ddp_timeout}: past it gloo ends the wait itself, naming no rank), or 0 (off)")
        check_launch(self)
        apply_ddp_timeout(self)

    @property
    def block_order_seed(self) -> int:
        return self.curriculum_seed if self.curriculum_seed is not None else self.seed


def check_launch(args: TrainingArguments) -> None:
    """A launcher that asked for several processes must get them (otherwise each trains alone into one folder); FSDP
    asked for on CPU processes is said to be DDP (accelerate turns FSDP on only for accelerator process groups)."""
    import os

    from curricula.errors import LaunchError

    env_world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if env_world > 1 and args.world_size == 1:
        raise LaunchError(
            f"the launcher started {env_world} processes (WORLD_SIZE={env_world}) but this one trains alone: each "
            "process would run its own full training into the same output_dir. On a machine without GPUs pass "
            "--use_cpu true, whatever the launcher (accelerate launch --multi_gpu --num_processes 2 ... --use_cpu true, "
            "or torchrun --nproc_per_node 2 ... --use_cpu true)"
        )
    fsdp_env = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes")
    if (args.fsdp or fsdp_env) and args.world_size > 1 and cpu_process_group():
        import logging

        logging.getLogger(__name__).warning(
            "FSDP is asked for, but with --use_cpu accelerate runs the %d processes as plain DDP: every process holds "
            "the whole model, gradients and optimizer state (the results are the same, the memory is not sharded). "
            "FSDP needs CUDA or ROCm devices; on CPU, drop --fsdp to say what runs", args.world_size)
    simple_accelerate = "ACCELERATE_MIXED_PRECISION" in os.environ and "MASTER_ADDR" in os.environ
    if simple_accelerate and "WORLD_SIZE" not in os.environ and "OMPI_COMM_WORLD_SIZE" not in os.environ \
            and "PMI_SIZE" not in os.environ:
        raise LaunchError(
            "accelerate launch was asked for several processes but started one (without --multi_gpu its multi-CPU "
            "path needs MPI): use accelerate launch --multi_gpu --num_processes N --use_cpu true ..., or torchrun "
            "--nproc_per_node N ... --use_cpu true"
        )


def apply_ddp_timeout(args: TrainingArguments) -> None:
    """``--ddp_timeout`` for the process group set up by now (``TrainingArguments.__post_init__`` reads ``device``).
    transformers passes it to the group only on GPU: its ``_setup_devices`` adds ``timeout`` to ``PartialState``'s
    arguments in the CUDA and DeepSpeed branches, not with ``--use_cpu`` (or ``ACCELERATE_USE_CPU``), so a gloo group
    of CPU processes kept torch's default of 30 minutes, and a stopped rank hung its peers that long whatever
    ``--ddp_timeout`` said. Sets every backend's timeout (collectives) and the rendezvous store's (store waits)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        from torch.distributed.distributed_c10d import _get_default_store, _set_pg_timeout

        _set_pg_timeout(args.ddp_timeout_delta)
        _get_default_store().set_timeout(args.ddp_timeout_delta)


def cpu_process_group() -> bool:
    """Whether accelerate runs this process group as CPU processes (``MULTI_CPU``: DDP over gloo, never FSDP)."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    return PartialState().distributed_type == DistributedType.MULTI_CPU


def parse_mapping(value: Any, flag: str) -> dict | None:
    """A JSON or YAML mapping given on the command line (or a dict already)."""
    if value is None or isinstance(value, dict):
        return value
    import json

    import yaml

    text = str(value).strip()
    if not text:
        return None
    try:
        out = json.loads(text)
    except json.JSONDecodeError:
        try:
            out = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--{flag} {value!r} is neither JSON nor YAML ({str(err).splitlines()[0]}); give a "
                              "mapping such as '{\"reps\": 5}'") from None
    if not isinstance(out, dict):
        raise ConfigError(f"--{flag} {value!r} must be a mapping such as '{{\"reps\": 5}}', got {type(out).__name__}")
    return out


def parse_schedule(value: Any) -> dict:
    """--lr_schedule: a dict, a ``Schedule``, JSON, YAML, or a YAML/JSON file; always a dict afterwards."""
    import json
    from pathlib import Path

    import yaml

    from curricula.optim.schedules import Schedule

    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, dict):
        return value
    text = str(value)
    if not text.lstrip().startswith("{"):  # not inline JSON (which can be longer than a file name may be)
        try:
            is_file = Path(text).is_file()
        except OSError:  # ENAMETOOLONG: inline YAML longer than a file name
            is_file = False
        text = Path(text).read_text() if is_file else text
    try:  # JSON first: YAML 1.1 reads 2e-3 as a string
        out = json.loads(text)
    except json.JSONDecodeError:
        try:
            out = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--lr_schedule is neither a file, JSON nor YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(out, dict):
        raise ConfigError(f"--lr_schedule must be a mapping with a 'type' (e.g. warmup_cosine, infinite), got {out!r}")
    return out


def resolve_curriculum(args: CurriculumTrainingArguments):
    """The method config of ``args.curriculum`` (+ params) and ``args.domain_weights``, or None."""
    from curricula.methods import MethodConfig, MixtureConfig
    from curricula.mixing.weights import parse_weights_arg
    from curricula.methods import is_pipeline, load_recipe

    params = parse_mapping(args.curriculum_params, "curriculum_params")
    args.curriculum_params = params
    weights = parse_weights_arg(args.domain_weights, "domain_weights")
    spec = args.curriculum
    if spec is None:
        if params:
            raise ConfigError("--curriculum_params is given without --curriculum: it would be ignored; name the "
                              "recipe (e.g. --curriculum lfr) or drop the parameters")
        config = MixtureConfig(weights=weights) if weights is not None else None
    else:
        config = spec if isinstance(spec, MethodConfig) else load_recipe(spec, **(params or {}))
        if is_pipeline(config):
            raise ConfigError(
                f"--curriculum {spec!r} is a {type(config).__name__.removesuffix('Recipe').lower()} pipeline recipe "
                "(several training runs), not a method of one run; run it with `curricula "
                f"{type(config).__name__.removesuffix('Recipe').lower()} --recipe {spec}`")
        if isinstance(spec, MethodConfig) and params:
            raise ConfigError("--curriculum_params cannot change a curriculum given as a config object; set its "
                              "fields instead")
        if weights is not None:
            config = config.with_domain_weights(weights)
        if not isinstance(spec, str):  # keep the arguments serialisable (training_args.bin, to_dict)
            import json

            args.curriculum = json.dumps(config.to_dict())
    if config is None:
        return None
    if config.sets_steps and args.max_steps > 0:
        raise ConfigError(
            f"max_steps={args.max_steps} conflicts with curriculum={config.method!r}: a plan's length is its epochs "
            "(the trainer sets max_steps to the plan's real steps); leave max_steps unset"
        )
    if not config.sets_steps and args.max_steps <= 0:
        what = "a weighted domain mixture" if config.method == "mixture" else f"method {config.method!r}"
        raise ConfigError(f"{what} has no natural epoch: set max_steps (the number of optimizer steps)")
    if weights is not None and not isinstance(args.domain_weights, str):
        import json

        args.domain_weights = json.dumps(weights if not hasattr(weights, "tolist") else weights.tolist())
    return config


def method_config_of(args, curriculum=None):
    """The run's method config: ``curriculum=`` given to the trainer, or the one resolved from the arguments (not
    both)."""
    from curricula.methods import MethodConfig

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


def run_info(args, global_batch: int):
    """The curriculum's view of the run: blocks per optimizer step, the step budget, the block-order seed, and how
    many global batches the data loader may read before the previous step is observed (its lookahead: 2, plus what
    the workers prefetch)."""
    import math

    from curricula.methods import RunInfo

    workers = args.dataloader_num_workers
    prefetch = (args.dataloader_prefetch_factor or 2) if workers > 0 else 0
    lookahead = 2 + math.ceil(workers * prefetch / args.gradient_accumulation_steps)
    return RunInfo(global_batch, args.max_steps if args.max_steps > 0 else None,
                   getattr(args, "block_order_seed", args.seed), lookahead=lookahead)
