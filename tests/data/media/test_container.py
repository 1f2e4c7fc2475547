"""What the media readers say about files FFmpeg cannot open: in words, without errno numbers or the path
repeated in the reason, the same for the video and the audio path."""

import re

import pytest

from mmmae.data.media.audio_reader import read_audio
from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.errors import MediaError
from mmmae.data.media.video_reader import frame_timestamps, probe_video, read_frames
from tests.data.media.test_video_reader import write_video

READERS = {
    "frame_timestamps": frame_timestamps,
    "probe_video": probe_video,
    "read_frames": lambda source: read_frames(source, DenseSampling(2, 1), None),
    "read_audio": lambda source: read_audio(source, 0.0, 0.5),
}


def unreadable_files(folder) -> dict[str, tuple[object, str]]:
    """name: (a path or bytes, the reason every reader must give)."""
    write_video(folder / "whole.mp4", frames=40, audio=True)  # the index (moov) at the end
    data = (folder / "whole.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mkv").write_text("these are my notes, not a video\n" * 20)
    (folder / "folder.mp4").mkdir()
    not_media = "not a media file (FFmpeg recognises no audio or video format in it)"
    return {
        "empty file": (folder / "empty.mp4", "empty file"),
        "empty bytes": (b"", "empty file"),
        "text": (folder / "notes.mkv", not_media),
        "text bytes": ((folder / "notes.mkv").read_bytes(), not_media),
        "directory": (folder / "folder.mp4", "a directory, not a media file"),
        "missing": (folder / "absent.mp4", "file not found"),
        "no index": (folder / "cut.mp4", "corrupt or truncated mov,mp4,m4a,3gp,3g2,mj2 file (moov atom not found)"),
    }


@pytest.mark.parametrize("reader", READERS)
def test_unopenable_files_are_named_and_explained_in_words(tmp_path, reader):
    for name, (source, reason) in unreadable_files(tmp_path).items():
        with pytest.raises(MediaError) as error:
            READERS[reader](source)
        assert error.value.reason == reason, name
        assert not re.search(r"errno|\[\d+\]|\d{6,}", str(error.value), re.IGNORECASE), name
        if not isinstance(source, bytes):
            assert str(error.value) == f"{source}: {reason}"  # the path once, before the reason


def test_the_same_fault_in_many_files_is_explained_each_time(tmp_path):
    """FFmpeg's log drops a message that repeats the last one; each file must still hear why."""
    files = unreadable_files(tmp_path)
    for _ in range(3):
        with pytest.raises(MediaError, match="moov atom not found"):
            frame_timestamps(files["no index"][0])
