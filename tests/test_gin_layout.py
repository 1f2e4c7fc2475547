"""The shipped gin files keep their layout: a modality file defines only its modality, and
geometry a masker shares with the tokenizer comes from one macro."""

import re

import gin
import pytest

from mmmae.config import GIN_DIR, parse_config
from mmmae.masking.motion import MotionGuidedMasking
from mmmae.masking.region import RegionGuidedMasking
from mmmae.tokenizers.video import TubeletTokenizer

MODALITY_FILES = sorted((GIN_DIR / "modalities").glob("*.gin"))


@pytest.mark.parametrize("path", MODALITY_FILES, ids=lambda p: p.name)
def test_a_modality_file_binds_neither_the_model_nor_a_dataset(path):
    bound = {m.group(1) for m in re.finditer(r"^\s*(?:[\w/]+/)?(\w+)\.\w+\s*=", path.read_text(), re.MULTILINE)}
    assert not bound & {"MaskedAutoencoder", "MovingDigits", "MediaDataset", "Encoder"}, path.name


def test_one_macro_sets_the_patch_of_the_tokenizer_and_of_the_maskers_that_read_it():
    parse_config(["recipes/quickstart_video.gin"], ["VIDEO_PATCH = 8", "VIDEO_TUBELET = 4"])
    with gin.config_scope("video"):
        tokenizer, maskers = TubeletTokenizer(), (RegionGuidedMasking(), MotionGuidedMasking())
    assert tokenizer.kernel == (4, 8, 8)
    assert [(masker.tubelet, masker.patch) for masker in maskers] == [(4, 8)] * 2
