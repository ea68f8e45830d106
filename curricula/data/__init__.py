"""Data: corpus building, tokenizers, tokenize-and-pack.

The names a training script needs: ``pack_dataset`` (an in-memory ``datasets.Dataset`` of documents into dense,
domain-pure blocks), ``domain_names_of``, ``PackedData`` (a ``curricula pack`` folder) and ``per_domain_subset``
(an evaluation subset with an equal share of every domain).
"""

from curricula.data.pack import domain_names_of, load_blocks, pack_dataset, read_meta
from curricula.data.packed import PackedData, per_domain_subset

__all__ = ["PackedData", "domain_names_of", "load_blocks", "pack_dataset", "per_domain_subset", "read_meta"]
