"""IMU graph tokenizer: shapes, targets, device-order equivariance, the graph's effect, errors."""

import math

import gin
import pytest
import torch

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.tokenizers.imu import IMUGraphTokenizer
from tests.float32_bound import longest_sum, rounding_bound

RATES = {"left_wrist": 50, "right_wrist": 50, "left_ankle": 100, "chest": 25}
CHANNELS = {"left_wrist": 6, "right_wrist": 6, "left_ankle": 3, "chest": 6}
SKELETON = [["left_wrist", "chest"], ["right_wrist", "chest"], ["left_ankle", "chest"]]
WINDOW = 0.32  # 16, 16, 32 and 8 samples per token
STEPS = 3


def stages(tokenizer: IMUGraphTokenizer) -> int:
    """`rounding_bound`'s stages: resampling, the window's projection (or STFT and projection), the
    relative-motion messages, 4 per graph layer (neighbour mean, norm, 2 linears), the positions."""
    return 4 + 4 * len(tokenizer.graph)


def make(order=tuple(RATES), **kwargs) -> IMUGraphTokenizer:
    args = dict(dim=16, window=WINDOW, channels=CHANNELS, adjacency=SKELETON, stft_fft=8, stft_hop=2) | kwargs
    return IMUGraphTokenizer(sample_rates={name: RATES[name] for name in order}, **args)


def signals(batch: int = 2, steps: int = STEPS, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(batch, round(r * WINDOW) * steps, CHANNELS[n], generator=g) for n, r in RATES.items()}


@pytest.mark.parametrize("embed", ["patch", "stft"])
def test_shapes_with_different_rates_and_channels(embed):
    tokenizer = make(embed=embed)
    tokens = tokenizer(signals())
    assert tokens.grid == (STEPS, 4)
    assert tokens.embed.shape == (2, STEPS * 4, 16) and tokenizer.dim == 16
    assert tokenizer.target_dim == 32 * 6  # largest window (ankle, 32 samples) x largest channel count
    assert tokens.target.shape == (2, STEPS * 4, 32 * 6) and tokens.valid is None
    assert torch.isfinite(tokens.embed).all()


def test_target_is_the_window_resampled_padded_and_normalised_per_token():
    tokenizer = make(norm_target=False)
    x = signals()
    raw = tokenizer(x).target.view(2, STEPS, 4, 32, 6)
    ankle, chest_index = tokenizer.devices.index("left_ankle"), tokenizer.devices.index("chest")
    # left_ankle: 32 samples already, 3 channels padded to 6 with zeros
    window = x["left_ankle"][:, 32:64]
    assert torch.allclose(raw[:, 1, ankle, :, :3], window)
    assert torch.equal(raw[:, 1, ankle, :, 3:], torch.zeros(2, 32, 3))
    # chest: 8 samples upsampled to 32 by linear interpolation; a constant window stays constant
    x["chest"] = torch.arange(STEPS, dtype=torch.float).repeat_interleave(8)[None, :, None].expand(2, -1, 6)
    chest = tokenizer(x).target.view(2, STEPS, 4, 32, 6)[:, :, chest_index]
    assert torch.allclose(chest, torch.arange(STEPS, dtype=torch.float)[None, :, None, None].expand_as(chest))
    normed = make()(signals()).target.view(2, STEPS, 4, 32, 6)
    expected = (window - window.mean((1, 2), keepdim=True)) / (window.var((1, 2), keepdim=True) + 1e-6).sqrt()
    # the token's mean and variance over its 32 x 3 values, then subtract and divide
    assert torch.allclose(normed[:, 1, ankle, :, :3], expected, atol=rounding_bound(expected, 3, 32 * 3), rtol=0)
    assert torch.equal(normed[:, 1, ankle, :, 3:], torch.zeros(2, 32, 3))


def test_temporal_position_is_sincos_over_windows():
    tokenizer = make()
    repeated = {n: v[:, : v.shape[1] // STEPS].repeat(1, STEPS, 1) for n, v in signals().items()}
    embed = tokenizer(repeated).embed.view(2, STEPS, 4, 16)
    pos = sincos_pos_embed((STEPS,), 16)
    bound = rounding_bound(embed, stages(tokenizer), longest_sum(tokenizer))  # two tokens compared
    assert torch.allclose(embed - embed[:, :1], (pos - pos[:1])[None, :, None].expand_as(embed), atol=2 * bound, rtol=0)


@pytest.mark.parametrize("embed", ["patch", "stft"])
@pytest.mark.parametrize("adjacency", [SKELETON, "complete"])
def test_the_key_order_of_sample_rates_changes_nothing(embed, adjacency):
    """The grid orders devices by name: a model rebuilt from config.gin (dicts written sorted)
    gives the run's tokens, bit for bit."""
    first = make(embed=embed, adjacency=adjacency, graph_layers=2)
    second = make(tuple(reversed(RATES)), embed=embed, adjacency=adjacency, graph_layers=2)
    second.load_state_dict(first.state_dict())
    x = signals()
    a, b = first(x), second(x)
    assert first.devices == second.devices == tuple(sorted(RATES)) and b.grid == a.grid
    assert torch.equal(a.embed, b.embed) and torch.equal(a.target, b.target)


def test_the_same_seed_initialises_the_same_weights_in_any_device_order():
    """config.gin writes sample_rates sorted by key: a rebuilt model must start from the run's weights."""
    torch.manual_seed(0)
    first = make().state_dict()
    torch.manual_seed(0)
    second = make(tuple(reversed(RATES))).state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


@pytest.mark.parametrize("relative_motion, graph_layers", [(True, 0), (False, 1)])
def test_the_adjacency_changes_the_output(relative_motion, graph_layers):
    skeleton = make(relative_motion=relative_motion, graph_layers=graph_layers)
    complete = make(adjacency="complete", relative_motion=relative_motion, graph_layers=graph_layers)
    complete.load_state_dict(skeleton.state_dict())
    x = signals()
    a, b = skeleton(x).embed.view(2, STEPS, 4, -1), complete(x).embed.view(2, STEPS, 4, -1)
    bound = rounding_bound(a, stages(skeleton), longest_sum(skeleton))
    chest = skeleton.devices.index("chest")
    others = [d for d in range(4) if d != chest]
    assert (a[:, :, chest] - b[:, :, chest]).abs().max() <= bound, "chest neighbours every device either way"
    assert (a[:, :, others] - b[:, :, others]).abs().max() > bound


def test_standardisation_constants_per_channel_and_per_device():
    mean = {"left_wrist": 1.0, "right_wrist": [0.5] * 6, "left_ankle": [1.0, 2.0, 3.0], "chest": 0.0}
    std = {"left_wrist": 2.0, "right_wrist": 1.0, "left_ankle": [4.0, 5.0, 6.0], "chest": 3.0}
    scaled = make(mean=mean, std=std)
    plain = make()
    plain.load_state_dict(scaled.state_dict())
    x = signals()
    standardised = {n: (v - torch.tensor(mean[n])) / torch.tensor(std[n]) for n, v in x.items()}
    reference = plain(standardised).embed  # the standardisation's 2 roundings, one more stage
    bound = rounding_bound(reference, stages(plain) + 1, longest_sum(plain))
    assert torch.allclose(scaled(x).embed, reference, atol=bound, rtol=0)
    with pytest.raises(ValueError, match="'left_ankle' has 3 channels, got 6 values"):
        make(mean=[0.0] * 6)


def test_gin_builds_the_tokenizer_from_a_dict_and_edge_list():
    gin.parse_config(
        """
        IMUGraphTokenizer.dim = 8
        IMUGraphTokenizer.sample_rates = {"wrist": 50, "ankle": 100}
        IMUGraphTokenizer.window = 0.4
        IMUGraphTokenizer.adjacency = [["wrist", "ankle"]]
        IMUGraphTokenizer.embed = "stft"
        """
    )
    tokenizer = IMUGraphTokenizer()
    tokens = tokenizer({"wrist": torch.randn(1, 40, 6), "ankle": torch.randn(1, 80, 6)})
    assert tokens.grid == (2, 2) and tokenizer.target_dim == 40 * 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=0.33), r"'left_wrist' at 50 Hz gives 16\.5"),
        (dict(adjacency=[["chest", "head"]]), r"unknown \['head'\]"),
        (dict(embed="conv"), "embed = 'conv'"),
        (dict(embed="stft", stft_fft=16), r"stft_fft = 16 exceeds the window samples of \{'chest': 8\}"),
        (dict(channels={"chest": 6}), r"missing devices \['left_ankle'"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_bad_inputs_name_the_device_and_shapes():
    tokenizer = make()
    x = signals()
    with pytest.raises(ValueError, match=r"missing devices \['chest'\]"):
        tokenizer({n: v for n, v in x.items() if n != "chest"})
    with pytest.raises(ValueError, match=r"'left_ankle' expected \(B, T, 3\) .* of 32 samples, got \(2, 90, 3\)"):
        tokenizer(x | {"left_ankle": x["left_ankle"][:, :90]})
    with pytest.raises(ValueError, match=r"chest \(2, 16, 6\) -> 2 windows"):
        tokenizer(x | {"chest": x["chest"][:, :16]})
    assert math.prod(tokenizer(x | {"extra": torch.zeros(1)}).grid) == STEPS * 4, "devices not configured are ignored"


def test_devices_named_otherwise_point_to_the_dataset_device_map():
    x = signals()
    with pytest.raises(ValueError, match=r"logs that name their devices otherwise: MediaDataset\.imu_devices"):
        make()({("wrist" if n == "chest" else n): v for n, v in x.items()})
