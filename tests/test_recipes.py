"""Every shipped recipe parses and trains a couple of steps at microscopic size."""

import json
import math
from pathlib import Path

import pytest

from mmmae.config import GIN_DIR, parse_config
from mmmae.data.media.synthetic import write_demo_media
from mmmae.train import pretrain

RECIPES = sorted(p.name for p in (GIN_DIR / "recipes").glob("*.gin"))
ABLATIONS = sorted(p.name for p in (GIN_DIR / "ablations" / "masking").glob("*.gin"))  # docs/masking.md
MICRO = str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")


def test_all_published_recipes_ship():
    expected = {"videomae", "mae_st", "quickstart", "audiovisual_mae", "cav_mae", "tvlt", "video_imu", "video_text",
                "videomae_v2", "smaug", "siammae", "cropmae", "adamae", "marlin", "mgm",
                "mgmae", "tgm", "quickstart_media", "videomae_folder", "videoprism_stage2", "lv_mae",
                "two_stream_forgery", "vic_mae", "crossvideomae", "ttt_mae", "cdfsl_v", "ego_only", "siammcvae",
                "diffmae", "hvm1", "videomae_v2_giant", "diffusion_mavil", "vq_video", "motionaura"}
    assert expected <= {name.removesuffix(".gin") for name in RECIPES}


@pytest.fixture(scope="module")
def media_bindings(tmp_path_factory) -> list[str]:
    """A demo media tree (mp4 with audio, IMU CSV, captions) and the bindings that point a media recipe at it."""
    root = write_demo_media(tmp_path_factory.mktemp("media"), train_clips=8, test_clips=4)
    return [f"MEDIA_TRAIN = '{root / 'train'}'", f"MEDIA_TEST = '{root / 'test'}'", "FRAMES = 8", "STRIDE = 1",
            "FRAME_SIZE = 16"]


def reads_media(recipe: str) -> bool:
    return "data/media_folder.gin" in (GIN_DIR / recipe).read_text()


@pytest.mark.parametrize("recipe", [f"recipes/{r}" for r in RECIPES] + [f"ablations/masking/{a}" for a in ABLATIONS])
def test_recipe_trains_two_steps(recipe, tmp_path, request):
    parse_config([recipe, MICRO], request.getfixturevalue("media_bindings") if reads_media(recipe) else [])
    summary = pretrain(output_dir=str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert Path(summary["model"]).is_file()
    if recipe == "recipes/quickstart.gin":  # every decoded modality is drawn
        assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
            "audio_step00000002.png", "imu_step00000002.png", "text_step00000002.png", "video_step00000002.png"]
