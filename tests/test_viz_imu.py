"""IMU figures: the shaded time spans are the plan's hidden tokens; predictions back in signal space."""

import torch

from mmmae.tokenizers.imu import IMUGraphTokenizer
from mmmae.types import MaskPlan
from mmmae.viz_figure import MASKED, PREDICTED, VISIBLE, token_states
from mmmae.viz_imu import channel_labels, imu_mask_figure, imu_reconstruction_figure, token_spans
from tests.float32_bound import rounding_bound
from tests.test_viz_figure import drawn_outside

RATES = {"wrist": 8.0, "ankle": 4.0}


def signals(batch: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"wrist": torch.randn(batch, 16, 6, generator=generator),
            "ankle": torch.randn(batch, 8, 6, generator=generator)}


def test_spans_merge_consecutive_windows_per_device_and_skip_visible_ones():
    # grid (4 windows, 2 devices), token t * 2 + d; 0.5 s windows
    states = torch.tensor([PREDICTED, VISIBLE, PREDICTED, MASKED, VISIBLE, MASKED, PREDICTED, PREDICTED])
    assert token_spans(states, (4, 2), 0.5) == [
        [(0.0, 1.0, PREDICTED), (1.5, 2.0, PREDICTED)],  # device 0: windows 0, 1 predicted, 2 visible, 3 predicted
        [(0.5, 1.5, MASKED), (1.5, 2.0, PREDICTED)],  # device 1: window 0 visible, 1-2 hidden only, 3 predicted
    ]


def test_spans_cover_exactly_the_hidden_windows_of_a_random_plan():
    generator = torch.Generator().manual_seed(1)
    order = torch.randperm(24, generator=generator)
    plan = MaskPlan(keep=order[:8].sort().values[None], predict=order[8:20].sort().values[None])
    states = token_states(plan, 24)[0]
    spans = token_spans(states, (6, 4), 0.25)
    for d in range(4):
        for t in range(6):
            covering = [state for start, end, state in spans[d] if start <= t * 0.25 < end]
            expected = [] if states[t * 4 + d] == VISIBLE else [int(states[t * 4 + d])]
            assert covering == expected


def test_six_channels_are_named_as_acceleration_and_gyro():
    assert channel_labels(6)[0] == "acc x" and channel_labels(6)[3] == "gyro x"
    assert channel_labels(2) == ["channel 0", "channel 1"]


def test_figure_windows_are_the_targets_before_normalisation():
    tokenizer = IMUGraphTokenizer(dim=8, sample_rates=RATES, window=0.5, norm_target=False, mean=0.5, std=2.0)
    x = signals(2)
    assert torch.equal(tokenizer.figure_windows(x).flatten(2), tokenizer(x).target)


def test_figure_restore_undoes_the_per_window_target_normalisation():
    tokenizer = IMUGraphTokenizer(dim=8, sample_rates=RATES, window=0.5, channels={"wrist": 6, "ankle": 3})
    x = signals(1)
    x["ankle"] = x["ankle"][..., :3]
    target, windows = tokenizer(x).target[0], tokenizer.figure_windows(x)[0]
    tokens = torch.arange(target.shape[0])
    restored = tokenizer.figure_restore(target, windows, tokens)
    # a window's mean and std over 4 * 6 values, normalised and restored elementwise
    torch.testing.assert_close(restored, windows, atol=rounding_bound(windows, 4, 4 * 6), rtol=0)


def test_mask_figure_shades_one_span_per_run_of_hidden_windows():
    tokenizer = IMUGraphTokenizer(dim=8, sample_rates=RATES, window=0.5)  # grid (4, 2)
    plan = MaskPlan(keep=torch.tensor([[1, 4, 5, 6]]), predict=torch.tensor([[0, 2, 3, 7]]))
    fig = imu_mask_figure(tokenizer, signals(1), plan, "imu")
    ankle, wrist = fig.axes  # the grid orders devices by name: token t * 2 + d, d 0 ankle, 1 wrist
    assert (ankle.get_title(), wrist.get_title()) == ("sample 0: ankle", "sample 0: wrist")
    assert len(ankle.patches) == 1 and len(wrist.patches) == 2  # ankle: windows 0-1; wrist: windows 1 and 3
    assert drawn_outside(fig) == []


def test_reconstruction_figure_draws_the_predicted_windows_dashed():
    tokenizer = IMUGraphTokenizer(dim=8, sample_rates=RATES, window=0.5)
    plan = MaskPlan(keep=torch.tensor([[1, 4, 5, 6]] * 2), predict=torch.tensor([[0, 2, 3, 7]] * 2))
    fig = imu_reconstruction_figure(tokenizer, signals(2), torch.zeros(2, 4, tokenizer.target_dim), plan, 1, "imu")
    ankle, wrist = fig.axes
    dashed = [[line for line in ax.lines if line.get_linestyle() == "--"] for ax in (ankle, wrist)]
    assert [len(lines) for lines in dashed] == [2 * 6, 2 * 6]  # two predicted windows per device, 6 channels each
    assert drawn_outside(fig) == []
