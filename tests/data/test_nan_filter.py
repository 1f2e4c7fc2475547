"""Non-finite signals are reported with their sample index and never trained on."""

import logging

import torch

from mmmae.data.nan_filter import drop_non_finite


def test_nan_and_inf_samples_lose_the_modality_and_are_logged(caplog):
    audio = torch.zeros(3, 10)
    audio[1, 4] = float("nan")
    imu = {"wrist": torch.zeros(3, 5, 6), "ankle": torch.zeros(3, 2, 6)}
    imu["ankle"][2, 0, 0] = float("inf")
    batch = {"audio": audio, "imu": imu, "index": torch.tensor([40, 41, 42]),
             "imu_present": torch.tensor([False, True, True])}
    with caplog.at_level(logging.WARNING):
        out, dropped = drop_non_finite(batch, ["audio", "imu"])
    assert dropped == 2
    assert out["audio_present"].tolist() == [True, False, True]
    assert out["imu_present"].tolist() == [False, True, False]
    assert torch.isfinite(out["audio"]).all() and torch.isfinite(out["imu"]["ankle"]).all()
    assert "[41]" in caplog.text and "[42]" in caplog.text and "'imu'" in caplog.text


def test_clean_batch_is_returned_unchanged():
    batch = {"video": torch.rand(2, 3, 4, 8, 8), "text": torch.ones(2, 5, dtype=torch.long)}
    out, dropped = drop_non_finite(batch, ["video", "text"])
    assert dropped == 0 and out is batch
