"""Reconstruction targets from elsewhere than a modality's tokenizer (Modality.target): a frozen
teacher's tokens (teacher_tokens.py) and its pooled embedding (teacher_embedding.py), both read
from one shared frozen model per source (teacher.py). docs/targets.md."""
