"""Streaming mixtures: the curriculum's global batches drawn from per-domain streams (``datasets.IterableDataset``).

A streamed corpus has no block ids, so the methods that need every block's identity (LFR, cached reference losses)
cannot use it; every method that samples by domain can (fixed mixtures, the online mixers, one-run DoReMi and the
Group-DRO proxy with a live ``reference_model``). For them the curriculum sees one row per domain (``DataInfo`` with
``domain_ids = 0..K-1``), so each of its global batches says which domain every slot comes from, with the exact
per-domain counts it would draw from packed data. ``StreamingBlocks`` fills each slot with the next block of that
domain's stream (``curricula.data.streams.DomainBlockStream``: tokenized and packed on the fly).

Every process computes the same batches; with several processes accelerate's dispatcher reads them on the main
process and hands each process its slice (its default for iterable datasets), as the map-style sampler is sharded.
Resume is exact: a checkpoint at step ``s`` holds the curriculum's state and each domain stream's position as it was
after global batch ``s`` (snapshots of the last few batches are kept, since the data loader reads ahead), and the
resumed run continues every stream from there. Streams are read in the training process: ``dataloader_num_workers``
must be 0.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from curricula.data.streams import DomainBlockStream
from curricula.errors import ConfigError
from curricula.run_layout import read_json, write_json

STREAMS_FILE = "streams.json"


def is_stream(ds) -> bool:
    from datasets import IterableDataset

    return isinstance(ds, IterableDataset) or (isinstance(ds, dict) and bool(ds)
                                               and all(isinstance(v, IterableDataset) for v in ds.values()))


def domain_streams(ds, domain_names, domain_column: str) -> tuple[list, list[str]]:
    """One source per domain: a dict {name: stream}, or one stream with a domain column (filtered once per domain:
    each filter reads the whole stream, so one stream per domain is the efficient form)."""
    if isinstance(ds, dict):
        names = list(domain_names) if domain_names is not None else list(ds)
        missing = [n for n in names if n not in ds]
        if missing or len(names) != len(ds):
            raise ConfigError(f"domain_names {names} do not match the streams' names {sorted(ds)}; give one stream "
                              "per domain name")
        return [ds[n] for n in names], names
    features = getattr(ds, "features", None) or {}
    if domain_column not in (features or {}) and domain_column not in (getattr(ds, "column_names", None) or []):
        raise ConfigError(f"a streamed dataset needs a {domain_column!r} column (or pass one stream per domain: "
                          "train_dataset={name: IterableDataset, ...}); set --domain_column to the column's name")
    feature = features.get(domain_column) if features else None
    label_names = list(getattr(feature, "names", []) or [])
    names = list(domain_names) if domain_names is not None else label_names
    if not names:
        raise ConfigError(f"name the domains of the streamed column {domain_column!r}: domain_names=[...] (in the order "
                          "of their ids, or the values the column holds)")

    def only(d: int, name: str):
        return lambda row: row[domain_column] in (d, name)

    return [ds.filter(only(d, n)) for d, n in enumerate(names)], names


class StreamingBlocks(torch.utils.data.IterableDataset):
    """Rows ``{input_ids, domain_id, block_id}`` in the curriculum's slot order (``block_id`` counts the slots)."""

    def __init__(self, curriculum, streams: list[DomainBlockStream], window: int):
        self.curriculum, self.streams = curriculum, streams
        self.window = max(2, int(window) + 2)
        self.start = 0  # the step of the current epoch the next iteration starts at (a resume), then 0 again
        self._after: OrderedDict[int, list[dict]] = OrderedDict()  # batch index -> streams' states after it
        self._restored: dict | None = None

    def bind(self, curriculum, reference_losses=None) -> "StreamingBlocks":
        """The curriculum whose batches this draws (checked: it must sample by domain)."""
        needs = curriculum.needs
        if "block_records" in needs or ("reference" in needs and reference_losses is not None):
            what = "every block's loss" if "block_records" in needs else "cached reference losses of every block"
            raise ConfigError(f"method {curriculum.name!r} needs {what}, which a streamed corpus does not have (its "
                              "blocks have no ids): pack it first (curricula pack, or pack_dataset on a materialised "
                              "part of the stream)" + (", or give a live reference_model instead of "
                                                       "reference_losses" if "block_records" not in needs else ""))
        self.curriculum, self.window = curriculum, max(2, curriculum.run.lookahead + 2)
        return self

    def __iter__(self):
        cur = self.curriculum
        start, self.start = self.start, 0
        restored, self._restored = self._restored, None
        if restored is not None and restored.get("batch") == start:
            for stream, state in zip(self.streams, restored["streams"]):
                stream.load_state_dict(state)
        elif start:
            raise ConfigError(f"the streams cannot start at step {start} without their saved positions; resume from a "
                              "checkpoint written by this version (it holds them)")
        gb = cur.run.global_batch
        self._remember(start)
        for t, batch in enumerate(cur.batches(cur.epoch, start), start=start):
            for i, d in enumerate(batch.tolist()):
                yield {"input_ids": self.streams[d].next_block(), "domain_id": d, "block_id": t * gb + i}
            self._remember(t + 1)

    def _remember(self, t: int) -> None:
        self._after[t] = [s.state_dict() for s in self.streams]
        while len(self._after) > self.window:
            self._after.popitem(last=False)

    def save(self, directory: Path, step: int) -> None:
        _, done = self.curriculum.position(step)
        if done not in self._after:
            if not self._after:
                return  # this process never read the streams (the dispatcher reads them on the main process)
            raise ConfigError(f"the streams' position after batch {done} is no longer known (kept: {list(self._after)}); "
                              "the data loader read further ahead than expected (please report it)")
        write_json(Path(directory) / STREAMS_FILE, {"batch": done, "streams": self._after[done]})

    def load(self, directory: Path) -> None:
        path = Path(directory) / STREAMS_FILE
        self._restored = read_json(path, "stream positions") if path.is_file() else None


def collate_stream_rows(rows: list[dict]) -> dict[str, torch.Tensor]:
    ids = torch.as_tensor(np.stack([r["input_ids"] for r in rows]), dtype=torch.long)
    return {"input_ids": ids, "labels": ids.clone(),
            "domain_id": torch.as_tensor([r["domain_id"] for r in rows], dtype=torch.long),
            "block_id": torch.as_tensor([r["block_id"] for r in rows], dtype=torch.long)}
