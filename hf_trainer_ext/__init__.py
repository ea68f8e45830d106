"""Hugging Face glue: the curriculum trainer, its arguments, the callback, the sampler and data collation.

Names are imported on first use (PEP 562), so ``curricula``'s pure commands (``--help``, ``corpus``, ``tokenizer``,
``pack``, ``info``) start without importing torch or transformers.
"""

from importlib import import_module

_NAMES = {
    "BlockCollator": "hf_trainer_ext.data",
    "BlockDataset": "hf_trainer_ext.data",
    "CurriculumCallback": "hf_trainer_ext.callbacks",
    "CurriculumDataError": "hf_trainer_ext.data",
    "CurriculumMixin": "hf_trainer_ext.trainer",
    "CurriculumSampler": "hf_trainer_ext.sampler",
    "CurriculumTrainer": "hf_trainer_ext.trainer",
    "CurriculumTrainingArguments": "hf_trainer_ext.arguments",
    "with_curriculum": "hf_trainer_ext.trainer",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_trainer_ext' has no attribute {name!r}")


def __dir__():
    return __all__
