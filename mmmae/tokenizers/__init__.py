"""Modality tokenizers: raw input -> Tokens (embeddings, targets, grid)."""
