"""Packing as datatrove pipeline steps: N tasks tokenize, one task merges; the same bytes as ``curricula pack``.

::

    task i of N (any datatrove executor):  CurriculaCorpusReader(CORPUS) -> CurriculaPack(CORPUS, SHARDS, config)
                                           writes SHARDS/{i:05d}, the folder of `curricula pack CORPUS --shard i/N`
    then one task (depends=):              CurriculaMerge(SHARDS, OUT, num_shards=N)
                                           writes OUT, byte-identical to `curricula pack CORPUS --out OUT`

Nothing is re-implemented here: the reader yields the documents of ``curricula.data.shards.shard_documents`` (task
``rank`` of ``world_size`` gets shard ``rank/world_size``: curricula's contiguous document ranges, not datatrove's
round robin over files), ``CurriculaPack`` hands them to ``pack_shard`` and ``CurriculaMerge`` runs
``merge_shards``. ``CurriculaPack`` refuses, by name and leaving no shard folder, documents that are not exactly its
shard's rows in pack order (another task's, a reader with datatrove's own file sharding, some dropped by a filter in
between). Usage, executors and caveats: docs/data.md, "Packing with datatrove".

datatrove is an optional extra (``pip install 'curricula-lm[datatrove]'``); this module imports without it, and
building a step without it raises ``DatatroveMissingError`` saying so.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from curricula.data.corpus import SPLITS
from curricula.data.pack import PackConfig, PackError
from curricula.data.shards import COLUMNS, merge_shards, pack_shard, shard_documents
from curricula.errors import ConfigError

INSTALL = "pip install 'curricula-lm[datatrove]'"


class DatatroveMissingError(ConfigError, ImportError):
    """datatrove is not installed (the message names the extra)."""


try:
    from datatrove.data import Document
    from datatrove.pipeline.base import PipelineStep
except ImportError as _err:  # the steps' base is a stand-in that says what to install when a step is built
    _MISSING = f"the datatrove steps need datatrove ({_err}); install the extra: {INSTALL}"

    class PipelineStep:  # type: ignore[no-redef]
        def __init__(self, *args, **kwargs):
            raise DatatroveMissingError(_MISSING)


def _procs_here(num_proc: int, what: str) -> int:
    """``num_proc`` processes, or 1 inside a daemonic process (the pool workers of LocalPipelineExecutor(workers > 1)
    and of Ray), which may not fork the ``datasets.map`` pool; the output is the same."""
    import multiprocess  # datasets' (and datatrove's) process library: its pool workers are the daemonic ones

    if num_proc > 1 and multiprocess.current_process().daemon:
        warnings.warn(f"{what}: num_proc={num_proc} cannot fork inside this executor's worker process; using 1 (same "
                      "output; use PackConfig(num_threads=...) for parallelism inside a task)", stacklevel=2)
        return 1
    return num_proc


class CurriculaCorpusReader(PipelineStep):
    """The documents of shard ``rank``/``world_size`` of a curricula corpus (``curricula pack --shard``'s), split by
    split in pack order, one ``Document`` per row: ``id`` the doc_id, ``metadata`` ``domain``, ``split`` and
    ``doc_index`` (the document's position in its split)."""

    name = "curricula corpus shard"
    type = "📖 - READER"

    def __init__(self, corpus_dir, domains: list[str] | None = None, splits: tuple[str, ...] = SPLITS):
        super().__init__()
        self.corpus_dir, self.domains, self.splits = str(corpus_dir), domains, tuple(splits)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        for split, k, rows in shard_documents(Path(self.corpus_dir), (rank, world_size), domains=self.domains,
                                              splits=self.splits):
            for text, domain, doc_id in zip(*(rows.column(c).to_pylist() for c in COLUMNS)):
                doc = Document(text=text, id=doc_id, metadata={"domain": domain, "split": split, "doc_index": k})
                self.update_doc_stats(doc)
                yield doc
                k += 1


def _shard_rows(docs: Iterator, split: str, lo: int, hi: int) -> pa.Table:
    """Rows ``[lo, hi)`` of ``split`` from the task's documents, which must be exactly those rows, in order."""
    rows = {c: [] for c in COLUMNS}
    for k in range(lo, hi):
        doc = next(docs, None)
        if doc is None:
            raise PackError(f"this task's documents ended at {split} document {k}; its shard holds [{lo}, {hi})")
        got = (doc.metadata.get("split"), doc.metadata.get("doc_index"))
        if got != (split, k):
            what = f"{got[0]} document {got[1]}" if got[1] is not None else "no doc_index"
            raise PackError(
                f"got document {doc.id!r} ({what}), expected {split} document {k}: this task was handed documents of "
                "another shard (or some were dropped on the way); read the corpus with CurriculaCorpusReader, with no "
                "filter between it and CurriculaPack")
        rows["text"].append(doc.text)
        rows["domain"].append(doc.metadata["domain"])
        rows["doc_id"].append(doc.id)
    return pa.table(rows, schema=pa.schema([(c, pa.string()) for c in COLUMNS]))


class CurriculaPack(PipelineStep):
    """Tokenize this task's documents into ``output_folder/{rank:05d}``, the folder (``shard.json`` and token files)
    of ``curricula pack CORPUS --shard rank/world_size``, byte for byte; a finished shard with the same settings is
    kept. ``corpus_dir`` gives the shard rule's counts and the settings (its ``corpus.json``). Yields nothing."""

    name = "curricula pack shard"
    type = "💽 - WRITER"

    def __init__(self, corpus_dir, output_folder, config: PackConfig = PackConfig(), domains: list[str] | None = None,
                 splits: tuple[str, ...] = SPLITS, force: bool = False):
        super().__init__()
        self.corpus_dir, self.output_folder, self.config = str(corpus_dir), str(output_folder), config
        self.domains, self.splits, self.force = domains, tuple(splits), force

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        docs, calls, out_dir = iter(data or ()), [], Path(self.output_folder) / f"{rank:05d}"

        def documents(split, lo, hi):
            calls.append(split)
            return _shard_rows(docs, split, lo, hi)

        config = dataclasses.replace(self.config, num_proc=_procs_here(self.config.num_proc, self.name))
        with self.track_time("shard"):
            rec = pack_shard(Path(self.corpus_dir), out_dir, config, (rank, world_size), domains=self.domains,
                             splits=self.splits, force=self.force, documents=documents)
        if calls and (extra := next(docs, None)) is not None:  # (a finished shard, kept, reads no documents)
            shutil.rmtree(out_dir)  # so that a rerun packs it again (and refuses again) instead of keeping it
            raise PackError(f"this task was handed more documents than shard {rank}/{world_size} holds, from "
                            f"{extra.id!r} on: read the corpus with CurriculaCorpusReader")
        for split, entry in rec["splits"].items():
            self.stat_update(f"{split}_documents", value=entry["documents"], unit="shard")
            self.stat_update(f"{split}_tokens", value=entry.get("tokens", 0), unit="shard")
        yield from ()


class CurriculaMerge(PipelineStep):
    """One task, after every ``CurriculaPack`` task (``depends=``): ``merge_shards`` of ``shards_folder/{i:05d}``
    (``i < num_shards``; every shard folder there when ``num_shards`` is None) into the packed folder ``output_folder``.
    Yields nothing."""

    name = "curricula pack merge"
    type = "💽 - WRITER"

    def __init__(self, shards_folder, output_folder, num_shards: int | None = None, num_proc: int = 1,
                 force: bool = False):
        super().__init__()
        self.shards_folder, self.output_folder = str(shards_folder), str(output_folder)
        self.num_shards, self.num_proc, self.force = num_shards, num_proc, force

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise PackError(f"CurriculaMerge is one task's job: run its executor with tasks=1 (got {world_size})")
        root = Path(self.shards_folder)
        dirs = ([root / f"{i:05d}" for i in range(self.num_shards)] if self.num_shards is not None
                else sorted(p.parent for p in root.glob("[0-9]*/shard.json")))
        with self.track_time("merge"):
            meta = merge_shards(dirs, Path(self.output_folder), num_proc=_procs_here(self.num_proc, self.name),
                                force=self.force)
        for split, stats in meta["splits"].items():
            self.stat_update(f"{split}_blocks", value=stats["blocks"], unit="merge")
        yield from ()
