"""A causal-LM training script in the style of transformers' examples/pytorch/language-modeling/run_clm.py:
tokenize, group the texts into blocks, train with Trainer and default_data_collator, arguments from
HfArgumentParser. The README's drop-in section shows the lines that turn it into a curriculum run
(tests/integration/test_drop_in.py applies them and trains all three versions).

    python examples/run_clm.py --train_file docs.jsonl --tokenizer_name TOKENIZER_DIR --output_dir runs/clm
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from datasets import load_dataset
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, HfArgumentParser, default_data_collator
from transformers import Trainer, TrainingArguments


@dataclass
class DataArguments:
    train_file: str = field(metadata={"help": "a JSON lines file: one document per line, with a text field"})
    tokenizer_name: str = field(metadata={"help": "a tokenizer folder"})
    block_size: int = field(default=64, metadata={"help": "tokens per training block"})


def main():
    data_args, training_args = HfArgumentParser((DataArguments, TrainingArguments)).parse_args_into_dataclasses()
    raw = load_dataset("json", data_files=data_args.train_file, split="train")
    tokenizer = AutoTokenizer.from_pretrained(data_args.tokenizer_name)
    tokenized = raw.map(lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=raw.column_names)
    block_size = data_args.block_size

    def group_texts(examples):
        concatenated = {k: sum(examples[k], []) for k in examples.keys()}
        total = (len(concatenated["input_ids"]) // block_size) * block_size
        result = {k: [t[i : i + block_size] for i in range(0, total, block_size)] for k, t in concatenated.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    lm_datasets = tokenized.map(group_texts, batched=True)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=block_size, n_layer=1, n_embd=32,
                                       n_head=2))
    trainer = Trainer(model=model, args=training_args, train_dataset=lm_datasets,
                      eval_dataset=lm_datasets.select(range(8)), processing_class=tokenizer,
                      data_collator=default_data_collator)
    trainer.train()
    trainer.save_model()
    Path(training_args.output_dir, "log_history.json").write_text(json.dumps(trainer.state.log_history))


if __name__ == "__main__":
    main()
