"""Attention head counts, which the official MAE-family checkpoints do not store.

A count comes from the option `key` (the user's `--option heads=N`, or a source config's value
the converter copied there), else from the released models' count for a standard width
(`known`); any other width is an error naming the width and the option to pass, never a guess.
"""

from mmmae.zoo.convert.converted import option

VIT_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}  # ViT-Ti/S/B/L/H, ViT-g (VideoMAE V2)
MAE_DECODER_HEADS = {512: 16}  # MAE, MAE-ST and AudioMAE decoders


def head_count(options: dict, key: str, dim: int, known: dict[int, int], layout: str, notes: list[str],
               part: str = "encoder") -> int:
    """The head count of a `dim`-wide `part` (see the module docstring); a count read off `known`
    is noted in `notes`. A count that does not divide `dim` is an error too."""
    heads = option(options, key, int, None, layout)
    if heads is None:
        if dim not in known:
            widths = ", ".join(f"{width}->{count}" for width, count in sorted(known.items()))
            raise ValueError(f"{layout}: the {part} is {dim} wide, and the checkpoint does not store its head "
                             f"count (known only for the released widths: {widths}); pass --option {key}=N "
                             f"with N dividing {dim}")
        heads = known[dim]
        notes.append(f"{key}={heads}: the released models' head count for a {dim}-wide {part} (head counts are "
                     f"not stored in the checkpoint; pass --option {key}=N if yours differs)")
    if heads < 1 or dim % heads:
        raise ValueError(f"{layout}: option {key}={heads} does not divide the {part} width {dim}; pass "
                         f"--option {key}=N with N dividing {dim}")
    return heads
