"""Datasets: the built-in MovingDigits; media decoding and manifests come later."""
