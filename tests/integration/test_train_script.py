"""scripts/train.py: trains on packed data, saves the data's tokenizer with the model, refuses a mismatched model."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from curricula.data.pack import read_meta
from curricula.data.tokenizers import gpt2_files, load_tokenizer
from hf_trainer_ext.reference import ReferenceMismatchError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train.py"


def train_main():
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_script"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.main


COMMON = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--max_steps", "2", "--per_device_train_batch_size",
          "4", "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true"]


def test_trains_and_saves_the_datas_tokenizer(two_stages, tmp_path):
    packed = two_stages / "packed-en"
    train_main()(["--packed", str(packed), "--output_dir", str(tmp_path / "run"), *COMMON])
    assert (tmp_path / "run" / "model.safetensors").is_file()
    saved = load_tokenizer(tmp_path / "run").identity
    assert saved.vocab_sha256 == read_meta(packed)["tokenizer"]["vocab_sha256"]


def test_refuses_a_model_with_another_tokenizer(two_stages, tmp_path, tiny_gpt2):
    from transformers import GPT2TokenizerFast

    folder = tmp_path / "m"
    tiny_gpt2().save_pretrained(folder)
    vb, ej = gpt2_files()
    shutil.copy(ej, folder / "vocab.json")
    shutil.copy(vb, folder / "merges.txt")
    GPT2TokenizerFast.from_pretrained(str(folder)).save_pretrained(str(folder))
    with pytest.raises(ReferenceMismatchError, match="token ids would not mean the same thing"):
        train_main()(["--packed", str(two_stages / "packed-en"), "--model_name_or_path", str(folder),
                      "--output_dir", str(tmp_path / "run"), *COMMON])
