"""Maskers: (tokens, batch, rng) -> MaskPlan. Which tokens the encoder sees, which are predicted."""
