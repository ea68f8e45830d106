"""Packed blocks as training rows: ``block_id``/``domain_id`` ride along with the model inputs through the collator.

Sampler slots ``>= n_blocks`` are padding (see ``curricula.methods.lfr``): they load block ``slot - n_blocks`` and get
``labels = -100`` and ``block_id = -1``, so they add nothing to the loss, to ``num_items_in_batch`` or to the log.

Any collator works: ``BlockCollator(inner=user_collator)`` sets the block columns aside, calls the user's collator
on the rest of each row (``input_ids`` and any other model input the dataset has, e.g. ``attention_mask`` or
``labels``), and puts the block columns back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curricula.data.packed import per_domain_subset  # noqa: F401  (re-exported: evaluation subsets)
from curricula.errors import CurriculaError
from hf_trainer_ext.streaming import is_stream

BLOCK_COLUMNS = ("block_id", "domain_id")
COLUMNS = ("input_ids", *BLOCK_COLUMNS)


class CurriculumDataError(CurriculaError):
    """Training data a curriculum cannot use; the message says how to fix it."""


def check_block_dataset(ds, what: str = "a curriculum", fixed_length: bool = True) -> None:
    """What a curriculum needs: a map-style dataset of fixed-length blocks with dense integer block ids in row order
    and integer domain ids. Each failure names the fix (``curricula pack`` or ``pack_dataset`` for text).
    ``fixed_length=False``: rows of any length (TRL's SFT examples, padded by its collator; ``hf_trainer_ext.trl``)."""
    if ds is not None and not hasattr(ds, "__len__"):
        raise CurriculumDataError(
            f"a curriculum orders the blocks of a map-style dataset, got a streaming {type(ds).__name__} (no length, no "
            "random access); pack it first: `curricula pack` for a corpus on disk, or "
            "curricula.data.pack.pack_dataset(dataset.take(n) materialised with Dataset.from_generator) in memory"
        )
    cols = getattr(ds, "column_names", None)
    if cols is None:
        raise CurriculumDataError(
            f"a curriculum needs a datasets.Dataset of packed blocks, got {type(ds).__name__}; "
            "pack your corpus with `curricula pack` and load it with curricula.data.pack.load_blocks, or pack an "
            "in-memory dataset with curricula.data.pack.pack_dataset"
        )
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise CurriculumDataError(
            f"{what} needs training data with block_id and domain_id: the training dataset has no {missing} "
            f"column(s) (it has {cols}); a curriculum indexes blocks by "
            "block_id and domain_id: pack the corpus with `curricula pack` or curricula.data.pack.pack_dataset, or add "
            "dense block_id 0..N-1 and integer domain_id columns"
        )
    features = getattr(ds, "features", None) or {}
    dom_feature = features.get("domain_id")
    if getattr(dom_feature, "dtype", None) in ("string", "large_string"):
        sample = ds[:3]["domain_id"]
        raise CurriculumDataError(
            f"domain_id holds text ({sample!r}); a curriculum needs integer domain ids with names: "
            "dataset = dataset.class_encode_column('domain_id') (the names then come from its ClassLabel), or pack "
            "with curricula.data.pack.pack_dataset(..., domain_column=...)"
        )
    if fixed_length:
        _check_fixed_length(ds)
    n = len(ds)
    ids = np.asarray(ds.with_format("numpy")["block_id"])
    if n and (ids[0] != 0 or np.any(np.diff(ids) != 1)):
        raise CurriculumDataError(
            f"block_id must be dense 0..{n - 1} in row order (found {ids[0]}..{ids[-1]}, not consecutive); do not "
            "select or shuffle the packed dataset before training: the curriculum chooses the blocks"
        )


def _check_fixed_length(ds) -> None:
    data = getattr(ds, "data", None)  # the Arrow table of a datasets.Dataset
    if data is None or "input_ids" not in data.column_names or len(ds) == 0:
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    col = data.column("input_ids")
    if pa.types.is_fixed_size_list(col.type):
        return
    lengths = pc.list_value_length(col)
    lo, hi = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if lo != hi:
        raise CurriculumDataError(
            f"input_ids rows have different lengths ({lo} to {hi} tokens); a curriculum trains fixed-length blocks: "
            "pack documents into blocks with curricula.data.pack.pack_dataset(dataset, block_size=..., "
            "domain_column=...) or `curricula pack`"
        )


@dataclass
class BlockRows:
    """A batch of blocks as numpy arrays (what ``BlockDataset`` fetches, what ``BlockCollator`` turns into tensors)."""

    input_ids: np.ndarray
    block_id: np.ndarray
    domain_id: np.ndarray
    is_pad: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per-row arrays, e.g. cached reference losses
    inputs: dict[str, list] = field(default_factory=dict)  # other model-input columns of the dataset, per row


class BlockDataset(torch.utils.data.Dataset):
    """A packed ``datasets.Dataset`` read a batch at a time (``__getitems__``) as numpy, with pad-slot decoding.
    ``inputs`` names further columns to pass to the collator (e.g. ``attention_mask``, ``labels``)."""

    def __init__(self, ds, extras: dict | None = None, inputs: Sequence[str] = (), checked: bool = False):
        if not checked:
            check_block_dataset(ds)
        self.inputs = [c for c in inputs if c in ds.column_names and c not in COLUMNS]
        self.ds = ds.select_columns(list(COLUMNS)).with_format("numpy")
        self.other = ds.select_columns(self.inputs) if self.inputs else None
        self.n = len(ds)
        self.column_names = list(COLUMNS) + self.inputs
        self.extras = dict(extras or {})  # name -> object with take(rows) -> array, rows aligned with block_id

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, slots: Sequence[int]) -> list[BlockRows]:
        # one opaque item: Trainer's RemoveColumnsCollator passes non-dict features through untouched
        slots = np.asarray(slots, dtype=np.int64)
        pad = slots >= self.n
        real = np.where(pad, slots - self.n, slots)
        rows = self.ds[real.tolist()]
        extra = {name: src.take(real) for name, src in self.extras.items()}
        inputs = self.other[real.tolist()] if self.other is not None else {}
        return [BlockRows(rows["input_ids"], rows["block_id"], rows["domain_id"], pad, extra, inputs)]

    def __getitem__(self, slot: int) -> dict:
        r = self.__getitems__([slot])[0]
        return {"input_ids": r.input_ids[0], "block_id": r.block_id[0], "domain_id": r.domain_id[0], "is_pad": r.is_pad[0]}


class BlockCollator:
    """Batches of blocks → model inputs plus ``block_id``/``domain_id`` (removed again before the forward).

    With ``inner`` (the user's collator, e.g. ``default_data_collator`` or ``DataCollatorForLanguageModeling``), each
    row is handed to it as a plain dict without the block columns; its output gets them back (labels of padding
    slots are ignored; without labels in its output, labels are the input ids)."""

    def __init__(self, inner: Callable | None = None):
        self.inner = inner

    def __call__(self, features) -> dict[str, torch.Tensor]:
        extra, inputs = {}, {}
        if len(features) == 1 and isinstance(features[0], BlockRows):  # a batch from BlockDataset.__getitems__
            r = features[0]
            ids, block_id, domain_id, pad = r.input_ids, r.block_id.astype(np.int64), r.domain_id.astype(np.int64), r.is_pad
            extra = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in r.extra.items()}
            inputs = r.inputs
        else:  # a list of rows (e.g. an evaluation dataset; of different lengths when the user's collator pads)
            ids = [np.asarray(f["input_ids"]) for f in features]
            ids = ids if self.inner is not None else np.stack(ids)
            block_id = np.array([f.get("block_id", -1) for f in features], dtype=np.int64)
            domain_id = np.array([f.get("domain_id", -1) for f in features], dtype=np.int64)
            pad = np.array([bool(f.get("is_pad", False)) for f in features])
            keys = [k for k in features[0] if k not in (*COLUMNS, "is_pad")] if features else []
            inputs = {k: [f[k] for f in features] for k in keys}
        if self.inner is not None:
            batch = self._inner(ids, inputs)
        else:
            input_ids = torch.from_numpy(ids.astype(np.int64))
            batch = {"input_ids": input_ids, "labels": input_ids.clone()}
            for k, v in inputs.items():
                batch[k] = torch.as_tensor(np.asarray(v))
        if pad.any():
            batch["labels"][torch.from_numpy(pad)] = -100
            block_id = np.where(pad, -1, block_id)
        batch["block_id"] = torch.from_numpy(block_id)
        batch["domain_id"] = torch.from_numpy(domain_id)
        batch.update(extra)
        return batch

    def _inner(self, ids: np.ndarray, inputs: dict) -> dict:
        rows = [{"input_ids": ids[i].tolist(), **{k: _plain(v[i]) for k, v in inputs.items()}} for i in range(len(ids))]
        batch = dict(self.inner(rows))
        if "input_ids" not in batch:
            raise CurriculumDataError(f"the data collator {type(self.inner).__name__} returned no input_ids "
                                      f"(keys {sorted(batch)}); a causal-LM collator must return the batch's input_ids")
        batch = {k: torch.as_tensor(v) for k, v in batch.items()}
        if "labels" not in batch:
            batch["labels"] = batch["input_ids"].clone()
        else:
            batch["labels"] = batch["labels"].clone()
        return batch


def _plain(v):
    return v.tolist() if hasattr(v, "tolist") else v


def check_collator(collator: Callable, dataset: BlockDataset) -> None:
    """Call the user's collator on one block at construction, so an incompatible one fails now with the fix."""
    if len(dataset) == 0:
        return
    try:
        BlockCollator(collator)(dataset.__getitems__([0]))
    except CurriculumDataError:
        raise
    except Exception as err:  # noqa: BLE001  (any failure of user code: say what to change)
        raise CurriculumDataError(
            f"the data collator {getattr(collator, '__name__', type(collator).__name__)} fails on a block of the "
            f"training data ({type(err).__name__}: {err}); CurriculumTrainer hands it each row as a dict of model "
            "inputs (input_ids and the dataset's other input columns) with block_id/domain_id set aside. Make it accept "
            "such rows, or drop data_collator= (the trainer's own collator builds input_ids and labels)"
        ) from err


# ---- what the trainer takes: packing in the trainer, the model's input columns, domain names --------------------


def pack_for_training(ds, args, model, tokenizer):
    """``args.packing``: ``curricula.data.pack.pack_dataset`` with the trainer's tokenizer. The block size is
    ``packing_block_size``, else the rows' own length when they are token rows of one length (rows already cut to a
    block size keep it), else the model's context (at most 1024); what was done is logged."""
    import logging

    from curricula.data.pack import pack_dataset

    if ds is None:
        return None
    text = args.dataset_text_field in getattr(ds, "column_names", ())
    if tokenizer is None and text:
        from curricula.errors import ConfigError

        raise ConfigError("packing needs a tokenizer to tokenize the text: pass processing_class=tokenizer")
    if args.packing_block_size:
        size, why = args.packing_block_size, "--packing_block_size"
    elif not text and (length := fixed_row_length(ds)):
        size, why = length, "the rows' own length"
    else:
        size, why = model_context(model), "the model's context; set --packing_block_size to choose"
    packed = pack_dataset(ds, tokenizer=tokenizer, block_size=size, text_column=args.dataset_text_field,
                          domain_column=args.domain_column)
    logging.getLogger(__name__).warning(
        "packing: %s %s rows into %s domain-pure blocks of %d tokens (%s)", f"{len(ds):,}",
        "text" if text else "token", f"{len(packed):,}", size, why)
    return packed


def fixed_row_length(ds) -> int | None:
    """The length of every ``input_ids`` row when they all have one, else None."""
    data = getattr(ds, "data", None)
    if data is None or "input_ids" not in data.column_names or len(ds) == 0:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    col = data.column("input_ids")
    if pa.types.is_fixed_size_list(col.type):
        return col.type.list_size
    lengths = pc.list_value_length(col)
    lo, hi = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    return int(lo) if lo == hi and lo else None


def model_inputs(model) -> list[str]:
    """Dataset columns worth passing to the collator besides input_ids: what the model's forward takes."""
    if model is None:
        return []
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return []
    return [p for p in params if p not in ("input_ids", "kwargs", "labels")] + ["labels"]


def class_label_names(ds) -> list[str] | None:
    from curricula.data.pack import domain_names_of

    return domain_names_of(ds)


@dataclass
class BlockData:
    """What the trainer trains on: the (wrapped) dataset and collator, and the block columns' domains."""

    dataset: Any
    collator: Callable | None
    domain_ids: np.ndarray | None  # one per training row, when the data has block columns
    domain_names: list[str]  # given, from the domain_id ClassLabel or the packed data, else "0", "1", ...
    tokenizer_identity: dict | None
    block_logging: bool
    stream: Any = None  # a StreamingBlocks when the training data is streamed (its curriculum is set by the trainer)

    @property
    def n_domains(self) -> int:
        return int(self.domain_ids.max()) + 1 if self.domain_ids is not None and len(self.domain_ids) else 0


def init_with_block_data(trainer, base_init: Callable, positional: tuple, trainer_kwargs: dict, **prepare) -> BlockData:
    """``CurriculumMixin.__init__``'s data and base-class ``__init__``, in the order the base class needs: a Trainer
    gets the block data (``prepare_block_data``) as its training data and collator; TRL's ``SFTTrainer``, which
    prepares its own dataset (tokenizes, builds ``labels``), prepares it first (``hf_trainer_ext.trl``)."""
    from hf_trainer_ext.trl import init_sft, is_sft_trainer

    if is_sft_trainer(type(trainer)):
        return init_sft(trainer, base_init, positional, trainer_kwargs, **prepare)
    model, args, data_collator, train_dataset, *rest = positional
    data = prepare_block_data(model, args, train_dataset, data_collator, trainer_kwargs, **prepare)
    base_init(model, args, data.collator, data.dataset, *rest, **trainer_kwargs)
    return data


def prepare_block_data(model, args, train_dataset, data_collator, trainer_kwargs: dict, *, packed=None,
                       domain_names=None, tokenizer_identity=None, config=None, fixed_length: bool = True) -> BlockData:
    """The trainer's training data: packed in the trainer if ``args.packing`` (TRL-style; the evaluation data in
    ``trainer_kwargs`` too), taken from a ``PackedData``, checked for what the method needs, and wrapped so the block
    columns ride along with the model inputs through any collator. ``fixed_length=False``: rows of any length, for a
    collator that pads them (SFTTrainer's)."""
    if config is not None and is_stream(train_dataset):  # a streamed corpus: packed on the fly, drawn by domain
        return stream_block_data(model, args, train_dataset, trainer_kwargs, domain_names, tokenizer_identity, config)
    if getattr(args, "packing", False):  # text or tokenized documents in, dense domain-pure blocks out
        pack = lambda ds: pack_for_training(ds, args, model, trainer_kwargs.get("processing_class"))  # noqa: E731
        train_dataset = pack(train_dataset)
        ev = trainer_kwargs.get("eval_dataset")
        if ev is not None:
            trainer_kwargs["eval_dataset"] = {k: pack(v) for k, v in ev.items()} if isinstance(ev, dict) else pack(ev)
    if packed is not None:
        train_dataset = packed.train if train_dataset is None else train_dataset
        domain_names = packed.domain_names if domain_names is None else domain_names
        tokenizer_identity = packed.tokenizer if tokenizer_identity is None else tokenizer_identity
    if tokenizer_identity is None:  # pack_dataset records the tokenizer it packed with
        tokenizer_identity = packed_tokenizer(train_dataset)
    if config is not None:  # before anything else: the message says how to get block columns
        check_block_dataset(train_dataset, what=f"method {config.method!r}", fixed_length=fixed_length)
    has_blocks = train_dataset is not None and all(c in (getattr(train_dataset, "column_names", None) or ())
                                                   for c in BLOCK_COLUMNS)
    block_logging = bool(getattr(args, "log_block_losses", True) and has_blocks)
    domain_ids = None
    if block_logging:
        domain_ids = np.asarray(train_dataset.with_format("numpy")["domain_id"])
        domain_names = class_label_names(train_dataset) if domain_names is None else domain_names
        if config is None:
            check_block_dataset(train_dataset, fixed_length=fixed_length)
        train_dataset = BlockDataset(train_dataset, inputs=model_inputs(model), checked=True)
        if data_collator is not None and not isinstance(data_collator, BlockCollator):
            check_collator(data_collator, train_dataset)
            data_collator = BlockCollator(data_collator)
        data_collator = data_collator or BlockCollator()
    elif config is not None:
        raise CurriculumDataError("a curriculum needs training data with block_id and domain_id (curricula pack)")
    data = BlockData(train_dataset, data_collator, domain_ids, [], tokenizer_identity, block_logging)
    data.domain_names = [str(n) for n in domain_names] if domain_names is not None else \
        [str(d) for d in range(data.n_domains)]
    return data


def fix_loss_type(model) -> str | None:
    """GPT-2 leaves ``loss_type`` unset, so Trainer counts B*T instead of B*(T-1) loss tokens and the loss comes out
    (T-1)/T too low: name the causal-LM loss before Trainer inspects the model. Returns the note to log, if any."""
    if model is None or getattr(model, "loss_type", "") is not None or model.config.is_encoder_decoder:
        return None
    model.loss_type = "ForCausalLM"
    return (f"{type(model).__name__} had no loss_type: set to ForCausalLM, so the loss counts the T-1 predicted "
            "tokens of each block (Trainer would count T; losses are T/(T-1) of what a plain Trainer reports)")


def stream_block_data(model, args, train_dataset, trainer_kwargs: dict, domain_names, tokenizer_identity,
                      config) -> BlockData:
    """Streamed training data (``hf_trainer_ext.streaming``): one block stream per domain, packed on the fly to the
    model's context (``packing_block_size``), each slot of a global batch filled from its domain's stream."""
    from curricula.data.streams import DomainBlockStream
    from hf_trainer_ext.streaming import StreamingBlocks, collate_stream_rows, domain_streams

    if getattr(args, "dataloader_num_workers", 0):
        from curricula.errors import ConfigError

        raise ConfigError("streamed training data is read in the training process (its position is saved in every "
                          "checkpoint): set dataloader_num_workers=0")
    sources, names = domain_streams(train_dataset, domain_names, getattr(args, "domain_column", None) or "domain_id")
    tokenizer = stream_tokenizer(trainer_kwargs.get("processing_class"))
    size = getattr(args, "packing_block_size", None) or model_context(model)
    streams = [DomainBlockStream(s, size, tokenizer, text_column=getattr(args, "dataset_text_field", "text"), name=n)
               for s, n in zip(sources, names)]
    identity = tokenizer_identity or (tokenizer.identity.to_dict() if tokenizer is not None else None)
    blocks = StreamingBlocks(None, streams, window=2)
    from curricula.methods import DataInfo
    from hf_trainer_ext.arguments import run_info

    global_batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    blocks.bind(config.build(DataInfo(np.arange(len(names)), names, tokenizer=identity), run_info(args, global_batch)),
                trainer_kwargs.get("reference_losses"))  # a method that cannot stream is refused before any work
    return BlockData(blocks, collate_stream_rows, np.arange(len(names)), names, identity, True, stream=blocks)


def model_context(model) -> int:
    """Tokens per block when the data is packed in the trainer: the model's context, at most 1024."""
    config = getattr(model, "config", None)
    return min(int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 1024)), 1024)


def stream_tokenizer(tokenizer):
    """A transformers tokenizer as a curricula tokenizer (saved to a folder when it has none), or None."""
    if tokenizer is None:
        return None
    import tempfile

    from curricula.data.tokenizers import load_tokenizer

    folder = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
    if not (folder / "tokenizer.json").is_file():
        folder = Path(tempfile.mkdtemp(prefix="curricula-stream-tokenizer-"))
        tokenizer.save_pretrained(folder)
    return load_tokenizer(str(folder))


def packed_tokenizer(ds) -> dict | None:
    """The tokenizer identity ``pack_dataset`` stored in a dataset's description (None if it has none)."""
    import json

    text = getattr(getattr(ds, "info", None), "description", None)
    try:
        stats = json.loads(text) if text else None
    except ValueError:
        return None
    return stats.get("tokenizer") if isinstance(stats, dict) else None
