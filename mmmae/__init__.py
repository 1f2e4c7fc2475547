"""mmmae: multimodal masked modeling on one shared transformer, composed from gin files."""

__version__ = "0.1.0"
