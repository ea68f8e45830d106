"""Hugging Face glue (trainer, arguments, callbacks, samplers, Hub publishing)."""
