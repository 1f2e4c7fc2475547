"""Tests for MediaDataset's reader registry."""

import pytest

from mmmae.data.media.dataset import MEDIA_MODALITIES
from mmmae.data.media.modality_readers import READERS, reader_names, register_reader


def test_every_modality_but_video_registers_a_reader_with_its_layout_column():
    assert reader_names() == ("audio", "imu", "text")
    assert MEDIA_MODALITIES == ("video", "audio", "imu", "text")
    assert {name: READERS[name].column for name in reader_names()} == {"audio": "audio", "imu": "imu",
                                                                        "text": "caption"}


@pytest.mark.parametrize("name", ["audio", "video"])
def test_a_taken_name_is_refused(name):
    with pytest.raises(ValueError, match=repr(name)):
        register_reader(name, READERS["audio"])
