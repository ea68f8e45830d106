"""curricula: data curricula for language-model pretraining."""

__version__ = "0.1.0"
