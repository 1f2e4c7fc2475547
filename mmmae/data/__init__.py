"""Data: the built-in MovingDigits (moving_digits/), the user's own media (media/), and what
serves any dataset: transforms.py, view_pairs.py, clip_views.py and nan_filter.py (docs/design.md, "Inside data")."""
