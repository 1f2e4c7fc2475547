"""Benchmarks (`mmmae bench ...`): each measures its baseline in the same run and prints the ratio."""

# `mmmae bench step`: what it compares, and the forward's dtypes (named here, without importing torch, for the CLI).
STEP_VARIANTS = ("transformers", "dual_masking", "packing", "backend", "compile", "checkpointing")
STEP_DTYPES = ("float32", "bfloat16", "float16")
