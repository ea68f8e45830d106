"""Train a causal LM with a data curriculum: the recipe is the plan, everything else is HF arguments.

    accelerate launch scripts/train.py --recipe curricula/recipes/lfr.yaml --output_dir runs/lfr-demo
    accelerate launch scripts/train.py --recipe lfr --recipe_params '{"reps": 5}' --packed data/packed/en ...
    python scripts/train.py --config scripts/configs/lfr_sample_cpu.yaml --recipe lfr   # settings from YAML

Without ``--packed`` it trains on the embedded sample: builds the corpus, trains an 8k byte-level BPE on it and packs
it under ``--data_dir`` (each step is skipped when already done). The model is GPT-2 from scratch (sized by
``--n_layer/--n_embd/--n_head``) unless ``--model_name_or_path`` names any AutoModelForCausalLM folder. At the end it
prints where the checkpoint, the curriculum log, the analysis and its plots are.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class DataArguments:
    packed: str | None = field(default=None, metadata={"help": "packed blocks (`curricula pack` output)"})
    data_dir: str = field(default="data/sample", metadata={"help": "where the embedded sample is built and packed"})
    dataset: str = field(default="en", metadata={"help": "sample corpus: en (7 domains) or de"})
    tokenizer: str = field(
        default="sample-bpe8k",
        metadata={"help": "for the sample: 'sample-bpe8k' (trained on it), 'gpt2', or any tokenizer spec"},
    )
    block_size: int = field(default=128)
    max_blocks_per_domain: int | None = field(default=1200, metadata={"help": "cap per domain (sample only)"})
    max_eval_blocks: int = field(default=512, metadata={"help": "validation blocks used for evaluation (equal share per domain)"})


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "a model folder; default: new GPT-2"})
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4


ALIASES = {"--recipe": "--curriculum", "--recipe_params": "--curriculum_params"}  # the recipe is the curriculum


def prepare_sample(data: DataArguments) -> Path:
    from curricula.data.build import build_from_sample
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.tokenizers import train_bpe
    from curricula.data.corpus import load_corpus

    root = Path(data.data_dir)
    corpus = root / "corpus" / data.dataset
    if not (corpus / "corpus.json").is_file():
        build_from_sample(root / "corpus")
    tok = data.tokenizer
    if tok == "sample-bpe8k":
        tok_dir = root / "bpe8k"
        if not (tok_dir / "tokenizer.json").is_file():
            train_bpe(load_corpus(root / "corpus" / "en")["train"]["text"], tok_dir, vocab_size=8192)
        tok = str(tok_dir)
    name = Path(tok).name if Path(tok).exists() else tok
    out = root / f"packed-{data.dataset}-{name}-{data.block_size}-cap{data.max_blocks_per_domain}"
    cfg = PackConfig(tokenizer=tok, block_size=data.block_size, num_threads=os.cpu_count() or 1,
                     max_blocks_per_domain=data.max_blocks_per_domain)
    pack_corpus(corpus, out, cfg)
    return out


def with_config(argv: list[str]) -> list[str]:
    """``--config FILE.yaml``: its keys become arguments placed before the command line's, which override them."""
    if "--config" not in argv:
        return argv
    i = argv.index("--config")
    import yaml

    config = yaml.safe_load(Path(argv[i + 1]).read_text()) or {}
    rest = argv[:i] + argv[i + 2 :]
    given = {a[2:] for a in rest if a.startswith("--")}
    extra = []
    for k, v in config.items():
        if k not in given:
            extra += [f"--{k}", json.dumps(v) if isinstance(v, (dict, list)) else str(v)]
    return extra + rest


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    from curricula.data.pack import load_blocks, read_meta
    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments
    from hf_trainer_ext.data import per_domain_subset
    from hf_trainer_ext.reference import model_for_data

    parser = HfArgumentParser((DataArguments, ModelArguments, CurriculumTrainingArguments))
    argv = [ALIASES.get(a, a) for a in with_config(sys.argv[1:] if argv is None else list(argv))]
    if "--output_dir" not in argv and not (len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json"))):
        argv = [*argv, "--output_dir", "runs/train"]
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        data, margs, args = parser.parse_yaml_file(argv[0])
    else:
        data, margs, args = parser.parse_args_into_dataclasses(argv)

    packed = Path(data.packed) if data.packed else prepare_sample(data)
    meta = read_meta(packed)
    train = load_blocks(packed, "train")
    evaluation = None
    if "validation" in meta["splits"] and args.eval_strategy != "no":
        evaluation = per_domain_subset(load_blocks(packed, "validation"), data.max_eval_blocks)
    model = model_for_data(meta, margs.model_name_or_path, n_layer=margs.n_layer, n_embd=margs.n_embd,
                           n_head=margs.n_head)
    trainer = CurriculumTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=evaluation, domain_names=meta["domain_names"]
    )
    if args.should_save:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        # '_': Trainer's push_to_hub leaves it out (a local path)
        (Path(args.output_dir) / "_data.json").write_text(json.dumps({"packed": str(packed.resolve()), "split": "train"}))
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    if args.should_save:  # before save_model: with push_to_hub, save_model uploads the folder
        from hf_trainer_ext.reference import save_tokenizer_folder

        save_tokenizer_folder(meta.get("tokenizer_spec", meta["tokenizer"]["name"]), args.output_dir)
    trainer.save_model()
    if not args.should_save:
        return
    out = Path(args.output_dir)
    lines = [f"model and tokenizer:          {out} (the data's meta: {packed / 'meta.json'})"]
    if trainer.curriculum is not None:
        lines.append(f"curriculum log:               {out / 'curriculum'} (epoch-*.parquet, run.json, table.arrow)")
        try:
            from curricula.analysis import analyze_run, format_report

            result = analyze_run(out)
            print(format_report(result))
            lines.append(f"analysis and plots:           {out / 'analysis'} (report.md, *.png)")
        except ImportError:
            pass
    print("\n".join(["", "done.", *lines]))


if __name__ == "__main__":
    try:
        main()
    finally:
        # main() has returned, so the trainer and its wrapped model are garbage: free them and the process group now,
        # joining gloo's worker threads; left to the interpreter's exit, one can abort it (SIGABRT after a full run)
        from hf_trainer_ext.distributed import shutdown_distributed

        shutdown_distributed()
