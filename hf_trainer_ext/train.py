"""``curricula train``: train a causal LM with a curriculum; the recipe is the method, everything else is HF arguments.

    curricula train --recipe lfr --config lfr_sample_cpu --output_dir runs/lfr-demo          # bundled names
    curricula train --recipe lfr --recipe_params '{reps: 5}' --packed data/packed/en --output_dir runs/lfr
    accelerate launch -m hf_trainer_ext train --recipe lfr --packed data/packed/en ...        # several processes
    curricula train config.yaml                                                              # all settings in YAML

Without ``--packed`` it trains on the embedded sample: builds the corpus, trains an 8k byte-level BPE on it and packs
it under ``--data_dir`` (each step is skipped when already done). The model is GPT-2 from scratch (sized by
``--n_layer/--n_embd/--n_head``, initialised from ``--seed``) unless ``--model_name_or_path`` names any
AutoModelForCausalLM folder. Every argument is checked before any data is built. At the end it prints where the
checkpoint, the curriculum log, the analysis and its plots are.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "curricula" / "configs"
ALIASES = {"--recipe": "--curriculum", "--recipe_params": "--curriculum_params"}  # the recipe is the curriculum


@dataclass
class DataArguments:
    packed: str | None = field(default=None, metadata={"help": "packed blocks (`curricula pack` output); default: "
                                                                "the embedded sample, built and packed under data_dir"})
    data_dir: str = field(default="data/sample", metadata={"help": "where the embedded sample is built and packed"})
    dataset: str = field(default="en", metadata={"help": "sample corpus: en (7 domains) or de"})
    tokenizer: str = field(
        default="sample-bpe8k",
        metadata={"help": "for the sample: 'sample-bpe8k' (trained on it), 'gpt2', or any tokenizer spec"},
    )
    block_size: int = field(default=128, metadata={"help": "tokens per block (sample only)"})
    max_blocks_per_domain: int | None = field(default=1200, metadata={"help": "cap per domain (sample only)"})
    max_eval_blocks: int = field(default=512, metadata={"help": "validation blocks used for evaluation (equal "
                                                                "share per domain)"})


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "a model folder; default: a new GPT-2"})
    n_layer: int = field(default=2, metadata={"help": "layers of the new GPT-2"})
    n_embd: int = field(default=128, metadata={"help": "width of the new GPT-2"})
    n_head: int = field(default=4, metadata={"help": "attention heads of the new GPT-2"})


def prepare_sample(data: DataArguments) -> Path:
    from curricula.data.build import build_from_sample
    from curricula.data.corpus import load_corpus
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.tokenizers import train_bpe

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


def config_path(spec: str) -> Path:
    """A training-settings YAML: a path, or a bundled name (``lfr_sample_cpu``) from ``curricula/configs``."""
    from curricula.errors import ConfigError

    path = Path(spec)
    if path.is_file():
        return path
    bundled = CONFIGS_DIR / f"{spec}.yaml"
    if bundled.is_file():
        return bundled
    have = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    raise ConfigError(f"--config {spec!r}: no such file and no bundled config of that name (bundled: {', '.join(have)})")


def with_config(argv: list[str]) -> list[str]:
    """``--config FILE.yaml``: its keys become arguments placed before the command line's, which override them."""
    if "--config" not in argv:
        return argv
    import json

    import yaml

    i = argv.index("--config")
    if i + 1 >= len(argv):
        from curricula.errors import ConfigError

        raise ConfigError("--config needs a YAML file or a bundled config name")
    config = yaml.safe_load(config_path(argv[i + 1]).read_text()) or {}
    rest = argv[:i] + argv[i + 2 :]
    given = {ALIASES.get(a, a)[2:] for a in rest if a.startswith("--")}
    extra = []
    for k, v in config.items():
        if ALIASES.get(f"--{k}", f"--{k}")[2:] not in given:
            extra += [f"--{k}", json.dumps(v) if isinstance(v, (dict, list)) else str(v)]
    return extra + rest


def parse(argv: list[str]):
    from transformers import HfArgumentParser

    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    parser = HfArgumentParser((DataArguments, ModelArguments, CurriculumTrainingArguments),
                              prog="curricula train", description=__doc__.split("\n\n")[0])
    for alias, name in ALIASES.items():  # --recipe is --curriculum: one action, both spellings in --help
        action = parser._option_string_actions[name]
        action.option_strings.append(alias)
        parser._option_string_actions[alias] = action
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="YAML",
                        help="training settings from a YAML file or a bundled config (e.g. lfr_sample_cpu); flags on "
                             "the command line override its keys")
    argv = [ALIASES.get(a, a) for a in with_config(list(argv))]
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(argv[0])
    if "--output_dir" not in argv and not any(a in ("-h", "--help") for a in argv):
        argv = [*argv, "--output_dir", "runs/train"]
    return parser.parse_args_into_dataclasses(argv)


def main(argv: list[str] | None = None) -> None:
    from curricula.data.packed import PackedData
    from curricula.errors import CurriculaError
    from curricula.run_layout import write_json
    from hf_trainer_ext.reference import model_for_data, save_tokenizer_folder
    from hf_trainer_ext.trainer import CurriculumTrainer

    data_args, margs, args = parse(sys.argv[1:] if argv is None else argv)  # every argument checked here
    data = PackedData.load(data_args.packed if data_args.packed else prepare_sample(data_args))
    evaluation = data.validation(data_args.max_eval_blocks) if args.eval_strategy != "no" else None
    model = model_for_data(data.meta, margs.model_name_or_path, seed=args.seed, n_layer=margs.n_layer,
                           n_embd=margs.n_embd, n_head=margs.n_head)
    trainer = CurriculumTrainer(model=model, args=args, packed=data, eval_dataset=evaluation)
    if args.should_save:  # '_': Trainer's push_to_hub leaves it out (a local path)
        write_json(Path(args.output_dir) / "_data.json", {"packed": str(data.path.resolve()), "split": "train"})
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    if args.should_save:  # before save_model: with push_to_hub, save_model uploads the folder
        save_tokenizer_folder(data.tokenizer_spec, args.output_dir)
    trainer.save_model()
    if not args.should_save:
        return
    out = Path(args.output_dir)
    lines = [f"model and tokenizer:          {out} (the data's meta: {data.path / 'meta.json'})"]
    if trainer.curriculum is not None and (out / "curriculum").is_dir():
        lines.append(f"curriculum log:               {out / 'curriculum'} (epoch-*.parquet, plan.json, table.arrow)")
        from curricula.analysis import analyze_run, format_report

        try:
            result = analyze_run(out)
        except FileNotFoundError:  # a method without a per-block log (mixtures, DoReMi)
            result = None
        except CurriculaError as err:  # the training is done and saved: a log it cannot read only costs the report
            import logging

            logging.getLogger(__name__).warning("the analysis of %s was skipped: %s (the model and checkpoints are "
                                                "saved; fix or delete the file, then run `curricula analyze %s`)",
                                                out, err, out)
            result = None
        if result is not None:
            print(format_report(result))
            lines.append(f"analysis and plots:           {out / 'analysis'} (report.md, *.png)")
    print("\n".join(["", "done.", *lines]))


def run(argv: list[str] | None = None) -> None:
    """``main`` then a clean multi-process exit: main() has returned, so the trainer and its wrapped model are
    garbage; free them and the process group now, joining gloo's worker threads (left to the interpreter's exit,
    one can abort it: SIGABRT after a full run)."""
    try:
        main(argv)
    finally:
        from hf_trainer_ext.distributed import shutdown_distributed

        shutdown_distributed()


if __name__ == "__main__":
    run()
