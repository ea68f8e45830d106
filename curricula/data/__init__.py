"""Data: corpus building, tokenizers, tokenize-and-pack."""
