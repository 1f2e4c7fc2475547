"""Reading the user's own media: layouts (tables of clips), decoders (video, audio, IMU), one reader
per modality besides video (modalities/, registered in modality_readers.py), and MediaDataset; plus
shards and streaming for data that does not fit on one disk, `mmmae validate`'s report, re-encoding,
codec motion vectors, and MovingDigits written as media files (synthetic.py)."""
