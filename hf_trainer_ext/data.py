"""Packed blocks as training rows: ``block_id``/``domain_id`` ride along with ``input_ids`` through the collator.

Sampler slots ``>= n_blocks`` are padding (see ``curricula.curriculum.state``): they load block ``slot - n_blocks``
and get ``labels = -100`` and ``block_id = -1``, so they add nothing to the loss, to ``num_items_in_batch`` or to the
curriculum log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from curricula.errors import CurriculaError

COLUMNS = ("input_ids", "block_id", "domain_id")


class CurriculumDataError(CurriculaError):
    """Training data a curriculum cannot use; the message says how to fix it."""


def check_block_dataset(ds) -> None:
    cols = getattr(ds, "column_names", None)
    if cols is None:
        raise CurriculumDataError(
            f"a curriculum needs a datasets.Dataset of packed blocks, got {type(ds).__name__}; "
            "pack your corpus with `curricula pack` and load it with curricula.data.pack.load_blocks"
        )
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise CurriculumDataError(
            f"the training dataset has no {missing} column(s) (it has {cols}); a curriculum indexes blocks by "
            "block_id and domain_id: pack the corpus with `curricula pack`, or add dense block_id 0..N-1 and domain_id"
        )
    n = len(ds)
    ids = np.asarray(ds.with_format("numpy")["block_id"])
    if n and (ids[0] != 0 or np.any(np.diff(ids) != 1)):
        raise CurriculumDataError(
            f"block_id must be dense 0..{n - 1} in row order (found {ids[0]}..{ids[-1]}, not consecutive); do not "
            "select or shuffle the "
            "packed dataset before training: the curriculum chooses the blocks"
        )


@dataclass
class BlockRows:
    """A batch of blocks as numpy arrays (what ``BlockDataset`` fetches, what ``BlockCollator`` turns into tensors)."""

    input_ids: np.ndarray
    block_id: np.ndarray
    domain_id: np.ndarray
    is_pad: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per-row arrays, e.g. cached reference losses


class BlockDataset(torch.utils.data.Dataset):
    """A packed ``datasets.Dataset`` read a batch at a time (``__getitems__``) as numpy, with pad-slot decoding."""

    def __init__(self, ds, extras: dict | None = None):
        check_block_dataset(ds)
        self.ds = ds.select_columns(list(COLUMNS)).with_format("numpy")
        self.n = len(ds)
        self.column_names = list(COLUMNS)
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
        return [BlockRows(rows["input_ids"], rows["block_id"], rows["domain_id"], pad, extra)]

    def __getitem__(self, slot: int) -> dict:
        r = self.__getitems__([slot])[0]
        return {"input_ids": r.input_ids[0], "block_id": r.block_id[0], "domain_id": r.domain_id[0], "is_pad": r.is_pad[0]}


class BlockCollator:
    """Batches of blocks → model inputs plus ``block_id``/``domain_id`` (removed again before the forward)."""

    def __call__(self, features) -> dict[str, torch.Tensor]:
        extra = {}
        if len(features) == 1 and isinstance(features[0], BlockRows):  # a batch from BlockDataset.__getitems__
            r = features[0]
            ids, block_id, domain_id, pad = r.input_ids, r.block_id.astype(np.int64), r.domain_id.astype(np.int64), r.is_pad
            extra = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in r.extra.items()}
        else:  # a list of rows (e.g. an evaluation dataset)
            ids = np.stack([np.asarray(f["input_ids"]) for f in features])
            block_id = np.array([f.get("block_id", -1) for f in features], dtype=np.int64)
            domain_id = np.array([f.get("domain_id", -1) for f in features], dtype=np.int64)
            pad = np.array([bool(f.get("is_pad", False)) for f in features])
        input_ids = torch.from_numpy(ids.astype(np.int64))
        labels = input_ids.clone()
        if pad.any():
            labels[torch.from_numpy(pad)] = -100
            block_id = np.where(pad, -1, block_id)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "block_id": torch.from_numpy(block_id),
            "domain_id": torch.from_numpy(domain_id),
            **extra,
        }


def per_domain_subset(ds, max_blocks: int):
    """At most ``max_blocks`` blocks, an equal share from every domain (the first ones of each).

    Packed data is ordered by domain, so "the first N blocks" would evaluate only the first domains (the official
    DoReMi code's ``max_samples`` hazard)."""
    if len(ds) <= max_blocks:
        return ds
    dom = np.asarray(ds.with_format("numpy")["domain_id"])
    domains = np.unique(dom)
    share = max(1, max_blocks // len(domains))
    rows = np.concatenate([np.flatnonzero(dom == d)[:share] for d in domains])
    return ds.select(np.sort(rows).tolist())
