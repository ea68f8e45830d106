"""Packing on the fly: one domain's streamed documents into fixed-length blocks, resumable at any block.

The same invariants as ``pack_dataset`` / ``curricula pack``, applied to a stream: every document is tokenized (or
taken as ``input_ids``), followed by EOS when the tokenizer is known, and the domain's tokens are cut into
``block_size`` blocks in order; a block never mixes domains (each domain has its own stream). A stream that runs out
starts its next pass (``set_epoch`` on the source when it has one, so a shuffled stream reshuffles); the tokens left
at the end of a pass that do not fill a block are dropped, as ``pack_dataset`` drops a domain's last partial block.

State (``state_dict``): the source's own position (a ``datasets.IterableDataset`` ``state_dict``), the pass, and the
tokens read but not yet in a block (fewer than a block plus one document), so a resumed stream gives exactly the
blocks the uninterrupted one would have given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from curricula.errors import CurriculaError


class StreamError(CurriculaError):
    """A stream that cannot be packed (no tokens, a row without text or input_ids); the message says which."""


class DomainBlockStream:
    """Blocks of ``block_size`` tokens from one domain's documents (``source``: an iterable of rows, e.g. a
    ``datasets.IterableDataset``)."""

    def __init__(self, source, block_size: int, tokenizer=None, text_column: str = "text",
                 input_ids_column: str = "input_ids", name: str = "stream"):
        self.source, self.block_size, self.tokenizer = source, int(block_size), tokenizer
        self.text_column, self.input_ids_column, self.name = text_column, input_ids_column, name
        self.passes = 0
        self._carry = np.zeros(0, np.int32)
        self._rows: Iterator | None = None
        self._source_state: dict | None = None  # a position to resume the source from, before it is iterated

    # ---- reading ------------------------------------------------------------------------------------------------

    def _tokens(self, row: dict) -> np.ndarray:
        if self.input_ids_column in row and row[self.input_ids_column] is not None:
            ids = np.asarray(row[self.input_ids_column], dtype=np.int32).reshape(-1)
            if self.tokenizer is None:
                return ids
        elif self.text_column in row and self.tokenizer is not None:
            ids = self.tokenizer.encode_batch_arrays([str(row[self.text_column])])[0].astype(np.int32)
        else:
            raise StreamError(f"a row of stream {self.name!r} has neither {self.input_ids_column!r} nor (with a "
                              f"tokenizer) {self.text_column!r} (keys {sorted(row)}); pass the tokenizer as "
                              "processing_class for text, or stream tokenized rows")
        return np.append(ids, np.int32(self.tokenizer.eos_id))  # a document ends with EOS, as when packing on disk

    def _open(self) -> None:
        if self._source_state is not None and hasattr(self.source, "load_state_dict"):
            self.source.load_state_dict(self._source_state)
        self._source_state = None
        self._rows = iter(self.source)

    def next_block(self) -> np.ndarray:
        """The next block (int32 [block_size]); a new pass starts when the source runs out."""
        empty_passes = 0
        while self._carry.size < self.block_size:
            if self._rows is None:
                self._open()
            try:
                row = next(self._rows)
            except StopIteration:
                self._rows, self._carry = None, np.zeros(0, np.int32)  # the pass's partial tail is dropped
                self.passes += 1
                empty_passes += 1
                if empty_passes > 1:
                    raise StreamError(f"stream {self.name!r} holds fewer than {self.block_size} tokens in a whole "
                                      "pass: it cannot give one block; give it more documents or a smaller block "
                                      "size") from None
                if hasattr(self.source, "set_epoch"):
                    self.source.set_epoch(self.passes)
                continue
            empty_passes = 0
            self._carry = np.concatenate([self._carry, self._tokens(dict(row))])
        block, self._carry = self._carry[: self.block_size], self._carry[self.block_size:]
        return block

    # ---- persistence --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is: JSON values (the carried tokens as a list)."""
        source = self.source.state_dict() if hasattr(self.source, "state_dict") else None
        return {"passes": self.passes, "carry": self._carry.tolist(), "source": source, "started": self._rows is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("source") is None and state.get("started"):
            raise StreamError(f"stream {self.name!r} cannot resume: its source has no state_dict (use a "
                              "datasets.IterableDataset, e.g. load_dataset(..., streaming=True))")
        self.passes = int(state["passes"])
        if hasattr(self.source, "set_epoch"):
            self.source.set_epoch(self.passes)
        self._carry = np.asarray(state["carry"], dtype=np.int32)
        self._rows = None
        self._source_state = state.get("source") if state.get("started") else None
