"""Reference-model losses for DoReMi, scored once and cached as an Arrow column aligned with ``block_id``.

The reference model is frozen and the data fixed, so every block's per-token losses under it can be computed once
(batched, no grad) and read back memory-mapped during the proxy run: no reference forward per step. Positions are
the same as the proxy's per-token losses (labels shifted like ``ForCausalLMLoss``; the last position is 0).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from curricula.errors import CurriculaError
from curricula.run_layout import atomic_write, write_json
from hf_trainer_ext.losses import causal_lm_token_losses

LOSSES_FILE = "reference_losses.arrow"
META_FILE = "reference.json"


class ReferenceMismatchError(CurriculaError):
    """Reference losses that do not fit the data; the message says how to fix it."""


@torch.no_grad()
def score_reference(model, blocks, out_dir: Path, *, batch_size: int = 32, tokenizer_identity: dict | None = None,
                    model_name: str = "", device: str | torch.device | None = None, extra: dict | None = None) -> Path:
    """Write ``out_dir/reference_losses.arrow`` (``ref_loss``: float32[block_size] per block, in block_id order).

    Under several processes (``torch.distributed`` initialised) every process calls it: each scores its contiguous
    share of the blocks into a part file, and the main process assembles the cache once (then its meta file, last).
    The model is used as given on each process (a replicated reference: load it from its folder on every process)."""
    import torch.distributed as dist

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
    ids_col = blocks.select_columns(["input_ids"]).with_format("numpy")
    n = len(blocks)
    block_size = len(ids_col[0]["input_ids"])
    lo, hi = (int(x) for x in np.linspace(0, n, world + 1).astype(np.int64)[rank : rank + 2])
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    schema = pa.schema([("ref_loss", pa.list_(pa.float32(), block_size))])

    def write(tmp: Path) -> None:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for start in tqdm(range(lo, hi, batch_size), desc="scoring reference", unit="batch", disable=rank != 0):
                x = torch.as_tensor(np.asarray(ids_col[start : min(start + batch_size, hi)]["input_ids"]),
                                    dtype=torch.long).to(device)
                tok, _ = causal_lm_token_losses(model(input_ids=x).logits, x)
                flat = pa.array(tok.float().cpu().numpy().reshape(-1))
                writer.write_batch(pa.record_batch([pa.FixedSizeListArray.from_arrays(flat, block_size)],
                                                   schema=schema))

    target = out_dir / LOSSES_FILE
    if not distributed:
        atomic_write(target, write)
    else:
        parts = out_dir / "_parts"
        atomic_write(parts / f"part-{rank:05d}.arrow", write)  # this process's share
        dist.barrier()
        if rank == 0:
            def assemble(tmp: Path) -> None:
                with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                    for r in range(world):
                        with pa.memory_map(str(parts / f"part-{r:05d}.arrow")) as src:
                            for batch in pa.ipc.open_file(src).read_all().to_batches():
                                writer.write_batch(batch)

            atomic_write(target, assemble)
            shutil.rmtree(parts, ignore_errors=True)
    if rank == 0:
        meta = {"n_blocks": n, "block_size": block_size, "tokenizer": tokenizer_identity, "model": model_name,
                **(extra or {})}
        write_json(out_dir / META_FILE, meta)  # written last: a cache with this file is complete
    if distributed:
        dist.barrier()
    model.train(was_training)
    return target


class ReferenceLosses:
    """The cached losses, memory-mapped; ``take(rows)`` gives float32 [len(rows), block_size]."""

    def __init__(self, directory: Path, n_blocks: int, block_size: int, tokenizer_identity: dict | None = None):
        directory = Path(directory)
        if not (directory / LOSSES_FILE).is_file():
            raise ReferenceMismatchError(f"{directory} has no {LOSSES_FILE}; score the reference model first (score_reference)")
        meta = json.loads((directory / META_FILE).read_text())
        if meta["n_blocks"] != n_blocks or meta["block_size"] != block_size:
            raise ReferenceMismatchError(
                f"reference losses in {directory} cover {meta['n_blocks']} blocks of {meta['block_size']} tokens, the "
                f"training data has {n_blocks} of {block_size}; score the reference on the same packed data"
            )
        check_same_tokenizer(meta.get("tokenizer"), tokenizer_identity, what=f"the reference losses in {directory}")
        self._source = pa.memory_map(str(directory / LOSSES_FILE))
        table = pa.ipc.open_file(self._source).read_all()
        self.values = table.column("ref_loss").combine_chunks().flatten().to_numpy().reshape(n_blocks, block_size)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.values[rows]


def check_same_tokenizer(theirs: dict | None, ours: dict | None, what: str) -> None:
    if theirs and ours and theirs.get("vocab_sha256") != ours.get("vocab_sha256"):
        raise ReferenceMismatchError(
            f"{what} used tokenizer {theirs.get('name')!r} (vocab sha256 {theirs.get('vocab_sha256', '')[:12]}…) but the "
            f"packed data uses {ours.get('name')!r} ({ours.get('vocab_sha256', '')[:12]}…); token ids would not mean the "
            "same thing: use a reference model trained on data packed with the same tokenizer"
        )


def load_model_checked(folder: str | Path, tokenizer_identity: dict | None, what: str = "the model"):
    """An ``AutoModelForCausalLM`` folder whose tokenizer must be the packed data's (same vocabulary hash)."""
    from transformers import AutoModelForCausalLM

    from curricula.data.tokenizers import TokenizerError, load_tokenizer

    if tokenizer_identity is not None:
        try:
            theirs = load_tokenizer(folder).identity.to_dict()
        except TokenizerError as err:
            raise ReferenceMismatchError(f"cannot check the tokenizer of {what} {folder}: {err}") from None
        check_same_tokenizer(theirs, tokenizer_identity, what=f"{what} {folder}")
    return AutoModelForCausalLM.from_pretrained(folder)


def model_for_data(meta: dict, model_name_or_path: str | Path | None = None, seed: int | None = None, **gpt2_sizes):
    """The model for packed data (its ``meta.json``): a folder whose tokenizer must match it, or a new GPT-2 sized
    for it (vocabulary, block size, EOS id) with ``gpt2_sizes`` (n_layer, n_embd, n_head); ``seed`` seeds its init."""
    tok = meta["tokenizer"]
    if model_name_or_path:
        return load_model_checked(model_name_or_path, tok)
    from transformers import GPT2Config, GPT2LMHeadModel

    if seed is not None:
        torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=tok["vocab_size"], n_positions=meta["block_size"],
                                      bos_token_id=tok["eos_id"], eos_token_id=tok["eos_id"], **gpt2_sizes))


def save_tokenizer_folder(spec: str, out_dir: str | Path) -> None:
    """Put the packed data's tokenizer next to a trained model, so the folder is a complete model (and a valid
    ``--tokenizer`` for packing more data)."""
    out_dir = Path(out_dir)
    src = Path(spec)
    if src.is_dir():
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (src / name).is_file():
                shutil.copy(src / name, out_dir / name)
    elif spec in ("gpt2", "r50k_base"):
        from transformers import GPT2TokenizerFast

        from curricula.data.tokenizers import gpt2_files

        vocab_bpe, encoder_json = gpt2_files()
        shutil.copy(encoder_json, out_dir / "vocab.json")
        shutil.copy(vocab_bpe, out_dir / "merges.txt")
        GPT2TokenizerFast.from_pretrained(str(out_dir)).save_pretrained(str(out_dir))


def attach_reference(trainer, reference_losses, reference_model, live: bool | None = None):
    """The reference of a method that needs one (``needs = {"reference"}``): a cache of its per-token losses (read
    alongside each batch) or a live model (a forward per step). Returns the live model, or None; a reference given to
    a method that has no use for one is refused.

    A ``reference_model`` (a model or a folder) on map-style blocks is scored once into ``OUTPUT_DIR/reference_losses``
    (reused by a rerun or resume when the data, tokenizer and model are the same) when the run trains at least as many
    blocks as the data has, so caching costs less than a forward per step; otherwise (or ``live=True``, or streamed
    data) it runs live."""
    from curricula.errors import ConfigError
    from hf_trainer_ext.data import BlockDataset

    cur = trainer.curriculum
    if cur is None or "reference" not in cur.needs:
        if reference_losses is not None or reference_model is not None:
            raise ConfigError(f"a reference is given but method {cur.name if cur else None!r} does not use one; drop "
                              "reference_losses/reference_model")
        return None
    if (reference_losses is None) == (reference_model is None):
        raise ConfigError(f"method {cur.name!r} needs exactly one reference: reference_losses (a cache made by "
                          "score_reference, or --reference_losses DIR) or reference_model (a model or its folder)")
    if isinstance(reference_model, (str, Path)):
        reference_model = load_model_checked(reference_model, trainer.tokenizer_identity, what="the reference model")
    ds = trainer.train_dataset
    if reference_model is not None:
        reference_model = reference_model.to(trainer.args.device).eval().requires_grad_(False)
        trained = cur.total_steps * trainer.global_batch
        if live or not isinstance(ds, BlockDataset) or (live is None and trained < len(ds)):
            return reference_model
        reference_losses = cached_reference(reference_model, ds, Path(trainer.args.output_dir) / "reference_losses",
                                            trainer.tokenizer_identity, batch_size=trainer.args.per_device_eval_batch_size)
    block_size = len(ds.ds[0]["input_ids"])
    ds.extras["ref_loss"] = ReferenceLosses(reference_losses, len(ds), block_size, trainer.tokenizer_identity)
    return None


def cached_reference(model, blocks: "BlockDataset", folder: Path, tokenizer_identity: dict | None,
                     batch_size: int = 32) -> Path:
    """``folder``'s cache of ``model``'s losses on ``blocks``, scored now unless it already holds the same data's
    (tokens digest), tokenizer's and model's (weights digest)."""
    import xxhash

    h = xxhash.xxh3_128()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    data = xxhash.xxh3_128()
    arrays = [blocks.ds.data.column("input_ids")] + ([blocks.ds._indices.column(0)] if blocks.ds._indices else [])
    for column in arrays:  # the table's tokens and, after a select, which rows
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    data.update(memoryview(buf))
    key = {"model_xxh3_128": h.hexdigest(), "data_xxh3_128": data.hexdigest(), "n_blocks": len(blocks),
           "tokenizer": (tokenizer_identity or {}).get("vocab_sha256")}
    meta = folder / META_FILE
    if meta.is_file() and json.loads(meta.read_text()).get("key") == key:
        return folder
    return score_reference(model, blocks.ds, folder, batch_size=batch_size, tokenizer_identity=tokenizer_identity,
                           model_name="reference_model", extra={"key": key}).parent
