"""mmmae: multimodal masked modeling on one shared transformer, composed from gin files."""

__version__ = "0.1.0"

_PRETRAINED = {"load_pretrained": "from_pretrained", "save_pretrained": "save_pretrained", "push_to_hub": "push_to_hub"}


def __getattr__(name: str):
    """`mmmae.load_pretrained`, `mmmae.save_pretrained`, `mmmae.push_to_hub` (mmmae.zoo.pretrained), imported on use."""
    if name in _PRETRAINED:
        from mmmae.zoo import pretrained

        return getattr(pretrained, _PRETRAINED[name])
    raise AttributeError(f"module 'mmmae' has no attribute {name!r}")
