"""Downstream evaluation of pretrained encoders."""
