"""The shipped multimodal zoo model on IMU logs whose devices are named otherwise and run at other rates."""

import pytest
import torch

from mmmae.cli import main
from mmmae.data.media.imu_reader import read_imu_log, resample_imu
from mmmae.zoo.pretrained import from_pretrained
from tests.data.media.test_imu_devices import CLIPS, MODEL_RATES, RENAME, centred, foreign, native  # noqa: F401

ZOO = "tiny-multimodal-movingdigits"  # IMU: 4 devices, 0.25 s windows, 192 wide


@pytest.fixture
def zoo_model(tmp_path, monkeypatch):
    """The zoo model, its gin config (with its IMU tokenizer's rates) the global one."""
    monkeypatch.delenv("MMMAE_ZOO_REGISTRY", raising=False)
    monkeypatch.setenv("MMMAE_CACHE", str(tmp_path / "cache"))
    return from_pretrained(ZOO)


def test_a_mapped_and_resampled_log_feeds_the_zoo_model(zoo_model, foreign):  # noqa: F811
    data = centred(foreign, imu_devices=RENAME)  # rates: the model's, from its config
    batch = data.collate([data[i] for i in range(CLIPS)])
    assert {name: tuple(v.shape) for name, v in batch["imu"].items()} == {
        name: (CLIPS, int(rate), 6) for name, rate in MODEL_RATES.items()}
    tokens = zoo_model.modalities["imu"].tokenize(batch["imu"])
    assert tokens.grid == (4, len(MODEL_RATES)) and tokens.embed.shape == (CLIPS, 16, 192)  # 1 s in 0.25 s windows
    features = zoo_model.features(batch, "imu")
    assert features.shape == (CLIPS, 192) and torch.isfinite(features).all()


def test_a_log_at_the_models_names_and_rates_gives_the_same_tokens_as_before(zoo_model, native):  # noqa: F811
    data = centred(native)
    samples = [data[i] for i in range(CLIPS)]
    before = [resample_imu(read_imu_log(data.rows[i]["imu"]), 0.5, 1.5, MODEL_RATES) for i in range(CLIPS)]
    tokenizer = zoo_model.modalities["imu"].tokenizer
    now = tokenizer(data.collate(samples)["imu"])
    then = tokenizer({name: torch.stack([b[name] for b in before]) for name in MODEL_RATES})
    assert torch.equal(now.embed, then.embed) and torch.equal(now.target, then.target)


def test_overriding_the_zoo_models_imu_rates_points_to_the_device_map(tmp_path, monkeypatch):
    monkeypatch.delenv("MMMAE_ZOO_REGISTRY", raising=False)
    monkeypatch.setenv("MMMAE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"modalities\.imu\.tokenizer\.proj\.bottom\.weight \(192, 24\) in the file, "
                                         r"\(192, 150\) in the model.*MediaDataset\.imu_devices"):
        from_pretrained(ZOO, [f"IMU_RATES = { {name: 100.0 for name in MODEL_RATES} }"])


def test_the_documented_gin_file_probes_the_zoo_models_imu_features_on_mapped_logs(foreign, tmp_path,  # noqa: F811
                                                                                     monkeypatch, capsys):
    monkeypatch.delenv("MMMAE_ZOO_REGISTRY", raising=False)
    monkeypatch.setenv("MMMAE_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "my_imu.gin"  # docs/data.md's example, pointed at the test's clips
    config.write_text(f"""include 'data/media_folder.gin'
MEDIA_TRAIN = '{foreign}'
MEDIA_TEST = '{foreign}'
FRAMES = 8
STRIDE = 1
FRAME_SIZE = 16
MediaDataset.modalities = ['video', 'imu']
MediaDataset.imu_devices = {{'top_left': 'left_wrist', 'top_right': 'right_wrist',
                            'bottom': 'ankle', 'center': 'chest'}}
LinearProbe.modality = 'imu'
evaluations.retrievals = []
""")
    main(["eval", "--model", ZOO, "--gin_file", str(config)])
    assert "linear probe imu (label), pretrained: test accuracy" in capsys.readouterr().out
