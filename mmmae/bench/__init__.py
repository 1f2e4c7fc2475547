"""Benchmarks (`mmmae bench ...`): each measures its baseline in the same run and prints the ratio."""

# `mmmae bench step`: what it compares, and the forward's dtypes (named here, without importing torch, for the CLI).
# No float16: its steps would need loss scaling (a GradScaler), and the bf16 step is the one trained.
STEP_VARIANTS = ("transformers", "dual_masking", "packing", "backend", "compile", "checkpointing")
STEP_DTYPES = ("float32", "bfloat16")
