"""One reader per MediaDataset modality besides video; each module registers its own (modality_readers.py)."""
