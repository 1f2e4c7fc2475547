"""Open a media file with PyAV; whatever FFmpeg cannot read becomes a MediaError that says why in words.

Reasons never carry FFmpeg's errno numbers or repeat the path (MediaError names the file):
"file not found", "empty file", "not a media file (...)", "corrupt or truncated <format> file (...)",
"cannot decode: <FFmpeg's words>".
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator

import av
import av.logging

from mmmae.data.media.errors import MediaError

Source = str | os.PathLike | bytes
PROBE_BYTES = 1 << 20  # FFmpeg recognises a format from a file's first few kB; 1 MiB is ample


def _in_memory(source: Source) -> bool:
    return isinstance(source, (bytes, bytearray, memoryview))


def _check_file(source: Source) -> None:
    """MediaError for a path that is no file, or an empty file (or empty bytes)."""
    if _in_memory(source):
        if not len(source):
            raise MediaError(source, "empty file")
        return
    if os.path.isdir(source):
        raise MediaError(source, "a directory, not a media file")
    if not os.path.isfile(source):
        raise MediaError(source, "file not found")
    if not os.path.getsize(source):
        raise MediaError(source, "empty file")


def _open(source: Source) -> av.container.InputContainer:
    """av.open, catching FFmpeg's error log so that a failure can name the format FFmpeg recognised.

    The log level is process-wide and set only for the call: readers open files in one thread per
    process (DataLoader workers are processes)."""
    previous = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)  # FFmpeg passes its messages to PyAV only at a set level
    av.logging.set_skip_repeated(False)  # the same fault in many files: each one hears of it
    try:
        with av.logging.Capture() as logs:  # this thread's messages go here, not to the console
            try:
                return av.open(io.BytesIO(source) if _in_memory(source) else os.fspath(source))
            except av.FFmpegError as error:
                raise MediaError(source, _unopenable(source, error, logs)) from error
    finally:
        av.logging.set_level(previous[0])
        av.logging.set_skip_repeated(previous[1])


def _unopenable(source: Source, error: av.FFmpegError, logs: list[tuple[int, str, str]]) -> str:
    """Why av.open failed: a recognised but broken container, or no media at all."""
    demuxers = [(name, message) for _, name, message in logs if name]  # (level, component, message) each
    if demuxers and (_in_memory(source) or _has_media_format(source)):
        name, message = demuxers[-1]
        return f"corrupt or truncated {name} file ({message.strip()})"
    if demuxers or isinstance(error, av.error.InvalidDataError):
        return "not a media file (FFmpeg recognises no audio or video format in it)"
    return f"cannot open: {error.strerror}"


def _has_media_format(path: str | os.PathLike) -> bool:
    """Whether FFmpeg recognises a format in the file's first PROBE_BYTES alone (given a path, it also
    guesses one from the name's extension: a text file named .mkv goes to the Matroska demuxer)."""
    with open(path, "rb") as file:
        head = io.BytesIO(file.read(PROBE_BYTES))
    with av.logging.Capture() as logs:
        try:
            av.open(head).close()
        except av.FFmpegError:
            return any(name for _, name, _ in logs)
    return True


@contextlib.contextmanager
def open_container(source: Source) -> Iterator[av.container.InputContainer]:
    """Open a media file (a path or its bytes) for reading; MediaError naming it if that fails, and
    for any FFmpeg error inside the block (reason: "cannot decode: ...")."""
    _check_file(source)
    container = _open(source)
    try:
        with container:
            yield container
    except av.FFmpegError as error:
        raise MediaError(source, f"cannot decode: {error.strerror}") from error
