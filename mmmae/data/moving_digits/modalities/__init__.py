"""One renderer per MovingDigits modality; each module registers its own (modality_renderers.py)."""
