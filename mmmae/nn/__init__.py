"""Building blocks: attention backends, transformer blocks, positional embeddings."""
