"""Hugging Face glue: the curriculum trainer, its arguments, callbacks, sampler and data collation."""

from hf_trainer_ext.arguments import CurriculumTrainingArguments
from hf_trainer_ext.callbacks import CurriculumCallback, PerplexityLoggerCallback
from hf_trainer_ext.data import BlockCollator, BlockDataset, CurriculumDataError
from hf_trainer_ext.sampler import CurriculumSampler
from hf_trainer_ext.trainer import CurriculumTrainer

__all__ = [
    "BlockCollator",
    "BlockDataset",
    "CurriculumCallback",
    "CurriculumDataError",
    "CurriculumSampler",
    "CurriculumTrainer",
    "CurriculumTrainingArguments",
    "PerplexityLoggerCallback",
]
