"""Hugging Face glue: the curriculum trainer, its arguments, the callback, the sampler and data collation."""

from hf_trainer_ext.arguments import CurriculumTrainingArguments
from hf_trainer_ext.callbacks import CurriculumCallback
from hf_trainer_ext.data import BlockCollator, BlockDataset, CurriculumDataError
from hf_trainer_ext.sampler import CurriculumSampler
from hf_trainer_ext.trainer import CurriculumMixin, CurriculumTrainer, with_curriculum

__all__ = [
    "BlockCollator",
    "BlockDataset",
    "CurriculumCallback",
    "CurriculumDataError",
    "CurriculumMixin",
    "CurriculumSampler",
    "CurriculumTrainer",
    "CurriculumTrainingArguments",
    "with_curriculum",
]
