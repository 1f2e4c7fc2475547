"""mmmae: multimodal masked modeling on one shared transformer, composed from gin files."""

__version__ = "0.1.0"

_PRETRAINED = {"load_pretrained": "from_pretrained", "save_pretrained": "save_pretrained", "push_to_hub": "push_to_hub"}


def __getattr__(name: str):
    """`mmmae.load_pretrained`, `mmmae.save_pretrained`, `mmmae.push_to_hub` (mmmae.zoo.pretrained) and
    `mmmae.score` (mmmae.energy: a clip's energy under a frozen model), imported on use."""
    if name == "score":  # its module is not named score: importing it would shadow this function
        from mmmae.energy import score

        return score
    if name in _PRETRAINED:
        from mmmae.zoo import pretrained

        return getattr(pretrained, _PRETRAINED[name])
    raise AttributeError(f"module 'mmmae' has no attribute {name!r}")
