import pytest

from mmmae.bench.data import bench_data, format_data_bench, pretrain_setting
from mmmae.config import parse_config
from mmmae.data.media.synthetic import write_demo_media
from tests.test_train import MICRO_OVERRIDES


@pytest.fixture
def media_recipe(tmp_path):
    root = write_demo_media(tmp_path, train_clips=8, test_clips=4)
    parse_config(["recipes/quickstart_media.gin", str(MICRO_OVERRIDES)],
                 [f"MEDIA_TRAIN = '{root / 'train'}'", f"MEDIA_TEST = '{root / 'test'}'"])


def test_pretrain_setting_reads_the_recipe_or_the_default(media_recipe):
    assert pretrain_setting("batch_size") == 4  # micro_overrides.gin
    assert pretrain_setting("prefetch_factor") == 2  # pretrain's default, unbound


def test_data_bench_reports_both_rates_and_their_ratio(media_recipe):
    result = bench_data(batches=2, steps=1, workers=0)
    assert result["dataset"] == "MediaDataset" and result["batch_size"] == 4 and result["workers"] == 0
    assert result["load_clips_per_s"] > 0 and result["model_clips_per_s"] > 0 and result["fed_clips_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["load_clips_per_s"] / result["model_clips_per_s"])
    assert result["fed_over_held"] == pytest.approx(result["fed_clips_per_s"] / result["model_clips_per_s"])
    assert f"loading / consumption = {result['ratio']:.2f}x" in format_data_bench(result)
