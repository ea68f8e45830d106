"""TRL's ``SFTTrainer`` with the curriculum: ``with_curriculum(SFTTrainer)`` (and ``CurriculumSFTConfig``).

``SFTTrainer`` prepares its own dataset in its ``__init__``: it formats, tokenizes ``text`` / ``messages`` /
prompt-completion rows, builds ``labels`` (-100 outside the completion or the assistant turns when
``completion_only_loss`` / ``assistant_only_loss``), truncates to ``max_length`` and may pack. The curriculum lets it:
``SFTTrainer.__init__`` runs first on the user's dataset; then the prepared rows (SFT keeps the dataset's other
columns, so an integer ``domain_id`` rides through) get dense ``block_id`` s in row order and are wrapped like any
block data (``prepare_block_data``): the curriculum orders SFT's examples, each example one block, and SFT's collator
pads each batch. ``compute_loss`` takes the per-token losses from the collator's ``labels`` (prompt and padding
tokens are -100), so completion-only training stays completion-only and a block's loss is its mean over its own
trained tokens.

Rows of different lengths are accepted (``fixed_length=False``): LFR ranks blocks by their mean token loss, which
needs no common length, and a mixture draws rows by domain. What cannot work is refused when the trainer is built:
TRL's ``packing`` (it keeps only ``input_ids``/``labels``, so the domain is lost, concatenates examples of different
domains into one row, and its default ``bfd`` strategy trains padding-free: one flattened row per batch),
``padding_free`` (the same flattening), ``loss_type='dft'`` (curricula's ``compute_loss`` trains the NLL), streamed
datasets and training data without ``domain_id``. Domain-pure fixed-length blocks for SFT: pack them first
(``curricula.data.pack.pack_dataset``) and pass them as the training dataset: SFTTrainer sees ``input_ids`` and only
adds ``labels``, their ``block_id``/``domain_id`` are kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from curricula.errors import ConfigError
from hf_trainer_ext.data import BlockData, CurriculumDataError, prepare_block_data

__all__ = ["CurriculumSFTConfig", "init_sft", "is_sft_trainer", "check_trainer_class"]


def _trl_classes(cls: type) -> list[type]:
    return [c for c in cls.__mro__ if c.__module__.split(".")[0] == "trl"]


def is_sft_trainer(cls: type) -> bool:
    """Whether ``cls`` is TRL's ``SFTTrainer`` or a subclass (without importing trl)."""
    return any(c.__name__ == "SFTTrainer" for c in _trl_classes(cls))


def check_trainer_class(cls: type) -> None:
    """``with_curriculum`` on a TRL trainer: only ``SFTTrainer`` trains the causal-LM loss on ``labels`` that the
    curriculum's ``compute_loss`` computes; DPO, GRPO, reward or KTO training has another loss and other rows."""
    trl = _trl_classes(cls)
    if trl and not is_sft_trainer(cls):
        raise ConfigError(
            f"with_curriculum({cls.__name__}): of TRL's trainers only SFTTrainer (and its subclasses) can take the "
            f"curriculum: it trains the causal-LM loss on labels that the curriculum's compute_loss computes per "
            f"block; {trl[0].__name__} trains another loss on other rows (pairs, rollouts, rewards)")


def numbered(ds):
    """``ds`` with dense ``block_id`` 0..N-1 in row order, when it has a ``domain_id`` column and no ``block_id``
    (a streamed dataset stays as it is: without a curriculum it is SFTTrainer's as before)."""
    cols = getattr(ds, "column_names", None) or ()
    if "domain_id" not in cols or "block_id" in cols or not hasattr(ds, "__len__"):
        return ds
    return ds.add_column("block_id", np.arange(len(ds), dtype=np.int64))


def init_sft(trainer, base_init: Callable, positional: tuple, trainer_kwargs: dict, *, config=None,
             **prepare) -> BlockData:
    """``SFTTrainer.__init__`` on the user's data, then its prepared training rows as the curriculum's blocks (see the
    module docstring). Called by ``CurriculumMixin.__init__`` through ``init_with_block_data``."""
    model, args, data_collator, train_dataset, *rest = positional
    refuse_before(args, train_dataset, config)
    base_init(model, args, data_collator, train_dataset, *rest, **trainer_kwargs)
    args, ds = trainer.args, numbered(trainer.train_dataset)
    if args.packing:  # TRL packed it (refused with a curriculum): rows without domains, trained with SFT's own loss
        return BlockData(ds, trainer.data_collator, None, list(prepare.get("domain_names") or []), None, False)
    if config is not None and "domain_id" not in (getattr(ds, "column_names", None) or ()):
        raise CurriculumDataError(
            "with_curriculum(SFTTrainer) needs an integer domain_id column in the training dataset (SFTTrainer keeps "
            f"it through its preprocessing; the prepared rows have {getattr(ds, 'column_names', None)}): "
            "dataset.class_encode_column('domain_id') for text domain names, or dataset.add_column('domain_id', "
            "[0] * len(dataset)) for one domain")
    data = prepare_block_data(trainer.model, args, ds, trainer.data_collator, {}, config=config, fixed_length=False,
                              **prepare)
    if data.block_logging and getattr(args, "loss_type", "nll") != "nll":
        raise ConfigError(f"loss_type={args.loss_type!r} cannot take the curriculum's per-block losses: its "
                          "compute_loss trains the token NLL; use loss_type='nll'")
    trainer.train_dataset, trainer.data_collator = data.dataset, data.collator
    ev = trainer.eval_dataset  # numbered too, so evaluations report per-domain perplexity
    if ev is not None and not isinstance(ev, str):
        trainer.eval_dataset = {k: numbered(v) for k, v in ev.items()} if isinstance(ev, dict) else numbered(ev)
    return data


def refuse_before(args, train_dataset, config) -> None:
    """What cannot take a curriculum, said before SFTTrainer tokenizes anything."""
    if hasattr(args, "curriculum_config") and not is_sft_config(args):
        raise ConfigError(
            f"with_curriculum(SFTTrainer) got {type(args).__name__}: SFTTrainer needs an SFTConfig; use "
            "hf_trainer_ext.trl.CurriculumSFTConfig (SFTConfig plus the curriculum arguments: curriculum, "
            "domain_weights, ...), or an SFTConfig with the trainer's curriculum= keyword")
    if config is None:
        return
    if not hasattr(train_dataset, "__len__"):
        raise CurriculumDataError(
            f"a curriculum orders the rows of a map-style dataset, got a streaming {type(train_dataset).__name__}: "
            "materialise it (datasets.Dataset.from_generator(lambda: iter(dataset.take(n))))")
    if getattr(args, "packing", False) or getattr(args, "padding_free", False):
        raise ConfigError(
            f"{'packing' if getattr(args, 'packing', False) else 'padding_free'}=True cannot take a curriculum: "
            "TRL's packing keeps only input_ids/labels (the domain_id is lost) and concatenates examples of "
            "different domains into one row, and padding-free training (packing's default 'bfd' strategy) "
            "flattens each batch into one row, so no row is one block of one domain. Keep packing=False and "
            "padding_free=False: each SFT example is one block (LFR ranks examples by their mean token loss). For "
            "domain-pure fixed-length blocks, pack first with curricula.data.pack.pack_dataset(dataset, tokenizer=..., "
            "block_size=..., domain_column=...) and pass the blocks as the training dataset")


def is_sft_config(args) -> bool:
    return any(c.__name__ == "SFTConfig" for c in type(args).__mro__ if c.__module__.split(".")[0] == "trl")


@functools.cache
def _curriculum_sft_config() -> type:
    from dataclasses import dataclass

    from trl import SFTConfig

    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    @dataclass
    class CurriculumSFTConfig(CurriculumTrainingArguments, SFTConfig):
        """TRL's ``SFTConfig`` plus curricula's arguments (``curriculum``, ``domain_weights``, ``lr_schedule``, ...),
        for ``with_curriculum(SFTTrainer)``. ``packing`` and ``dataset_text_field`` are SFTTrainer's (TRL's packing
        cannot take a curriculum: see ``hf_trainer_ext.trl``); SFTConfig's defaults hold (``bf16`` unless ``fp16``,
        ``gradient_checkpointing``, ``learning_rate`` 2e-5, ``logging_steps`` 10)."""

    CurriculumSFTConfig.__module__, CurriculumSFTConfig.__qualname__ = __name__, "CurriculumSFTConfig"
    return CurriculumSFTConfig


def __getattr__(name: str):
    # CurriculumSFTConfig is built on first use: importing this module (as the trainer does) needs no trl
    if name == "CurriculumSFTConfig":
        return _curriculum_sft_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
