"""``PackedData``: a ``curricula pack`` output folder as one typed object (meta, splits, domains, tokenizer).

Every entry point that trains on packed data starts the same way (read the meta, load the train split, take a
per-domain validation subset, name the domains, check the tokenizer); this is that preamble, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from curricula.data.pack import load_blocks, read_meta


@dataclass(frozen=True)
class PackedData:
    path: Path
    meta: dict = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "PackedData":
        return cls(Path(path), read_meta(Path(path)))

    @property
    def domain_names(self) -> list[str]:
        return list(self.meta["domain_names"])

    @property
    def tokenizer(self) -> dict:
        """The tokenizer identity (name, kind, vocab_size, vocab_sha256, eos_id)."""
        return dict(self.meta["tokenizer"])

    @property
    def tokenizer_spec(self) -> str:
        """What ``load_tokenizer`` needs to rebuild the tokenizer (a name such as gpt2, or a folder)."""
        return self.meta.get("tokenizer_spec", self.meta["tokenizer"]["name"])

    @property
    def block_size(self) -> int:
        return int(self.meta["block_size"])

    @property
    def splits(self) -> list[str]:
        return sorted(self.meta["splits"])

    def has(self, split: str) -> bool:
        return split in self.meta["splits"]

    def domain_blocks(self, split: str = "train") -> np.ndarray:
        """Blocks per domain in the split (domain-name order), as packed (after any per-domain cap)."""
        doms = self.meta["splits"][split]["domains"]
        return np.array([doms[n]["blocks"] for n in self.domain_names], dtype=np.float64)

    @cached_property
    def train(self):
        return load_blocks(self.path, "train")

    def split(self, name: str):
        return load_blocks(self.path, name)

    def validation(self, max_blocks: int | None = None):
        """The validation split (an equal share of every domain when capped), or None when it has none."""
        if not self.has("validation"):
            return None
        ds = load_blocks(self.path, "validation")
        return per_domain_subset(ds, max_blocks) if max_blocks else ds


def per_domain_subset(ds, max_blocks: int, skip: int = 0):
    """At most ``max_blocks`` blocks, an equal share from every domain (the first ones of each, after the first
    ``skip // domains`` of each: ``skip`` set to another subset's ``max_blocks`` gives a disjoint one).

    Packed data is ordered by domain, so "the first N blocks" would evaluate only the first domains (the official
    DoReMi code's ``max_samples`` hazard)."""
    if len(ds) <= max_blocks and not skip:
        return ds
    dom = np.asarray(ds.with_format("numpy")["domain_id"])
    domains = np.unique(dom)
    share, offset = max(1, max_blocks // len(domains)), skip // len(domains)
    rows = np.concatenate([np.flatnonzero(dom == d)[offset:offset + share] for d in domains])
    return ds.select(np.sort(rows).tolist())
