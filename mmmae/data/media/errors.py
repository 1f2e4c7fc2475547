"""The one error every media reader raises for a sample it cannot read."""

from __future__ import annotations

import os


def source_name(source: str | os.PathLike | bytes) -> str:
    """How errors name a media source: its path, or "<bytes>" for a file held in memory."""
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)


class MediaError(Exception):
    """A sample that cannot be read; str() names the file and the reason (attributes path, reason)."""

    def __init__(self, path: str | os.PathLike | bytes, reason: str):
        self.path = source_name(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable, so errors cross DataLoader worker processes intact
        return type(self), (self.path, self.reason)


class NoAudioTrack(MediaError):
    """A file read for audio that has no audio stream (the dataset marks audio absent where it comes
    from the video file)."""

    def __init__(self, path: str | os.PathLike | bytes, reason: str = "no audio stream in the file"):
        super().__init__(path, reason)
