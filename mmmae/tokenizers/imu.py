"""Body-worn IMUs as a graph: one token per (time window, device), grid (T', devices).

Input: {device: (B, T_d, C_d)}, each device at its own rate, T_d = rate_d * clip seconds.
Each device's signal is standardised per channel (`mean`, `std`) and cut into windows of
w_d = rate_d * window samples. A window becomes a node feature by a per-device Linear over
its raw values ('patch') or over its per-channel STFT magnitude in dB ('stft', after
EVI-MAE). With `relative_motion`, every node adds the mean over its neighbours j of
MLP(x_i - x_j), x the windows resampled to a common length; `graph_layers` GIN-style layers
then mix neighbours at each time step (mmmae.nn.graph). Tokens get a fixed sin-cos position
over T' and a learned embedding per device name, so devices form a set: only the adjacency
relates them. The grid orders the devices by name, whatever the key order of `sample_rates`
(config.gin writes dicts sorted): a model rebuilt from its config.gin has the same grid, the
same initial weights for the same seed, and the same features.

Targets: each standardised window resampled (linear) to `target_samples` per channel, zero-
padded to the largest channel count, laid out (samples channels); with `norm_target`, MAE's
norm_pix over the token's real values ((x - mean) / sqrt(unbiased var + 1e-6)), padding kept 0.
"""

from collections.abc import Mapping, Sequence

import gin
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmmae.nn.graph import DifferenceMessages, GraphLayer, edge_index
from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import Tokens

EMBEDS = ("patch", "stft")
Constant = float | Sequence[float] | Mapping[str, float | Sequence[float]]


def resample(windows: torch.Tensor, samples: int) -> torch.Tensor:
    """(..., w, C) -> (..., samples, C), linear interpolation along w (identity when w == samples)."""
    flat = rearrange(windows, "... w c -> (...) c w")
    out = F.interpolate(flat, size=samples, mode="linear", align_corners=False)
    return out.transpose(1, 2).reshape(*windows.shape[:-2], samples, windows.shape[-1])


def spectrogram_db(windows: torch.Tensor, n_fft: int, hop: int, hann: torch.Tensor) -> torch.Tensor:
    """(..., w, C) -> (..., C * F * K): per channel |STFT| in dB (20 log10, floor -100 dB)."""
    flat = rearrange(windows, "... w c -> (...) c w")
    spec = torch.stft(flat.flatten(0, 1), n_fft, hop_length=hop, window=hann, center=True, return_complex=True)
    db = 20 * spec.abs().clamp_min(1e-5).log10()
    return db.reshape(*windows.shape[:-2], -1)


def token_statistics(values: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """values (..., S, C) with real (..., 1, C) in {0, 1} -> norm_pix's mean and sqrt(unbiased var
    + 1e-6) over the real values, each (..., 1, 1)."""
    count = real.sum(dim=(-2, -1), keepdim=True) * values.shape[-2]
    mean = (values * real).sum(dim=(-2, -1), keepdim=True) / count
    var = ((values - mean).pow(2) * real).sum(dim=(-2, -1), keepdim=True) / (count - 1).clamp_min(1)
    return mean, (var + 1e-6).sqrt()


def normalize_tokens(values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """values (..., S, C) with real (..., 1, C) in {0, 1}: norm_pix over the real values; padding 0."""
    mean, std = token_statistics(values, real)
    return (values - mean) / std * real


@gin.configurable(module="mmmae")
class IMUGraphTokenizer(nn.Module):
    """{device: (B, T_d, C_d)} -> Tokens over grid (T', devices), index t * devices + d.

    sample_rates: device name -> Hz; the grid orders the devices by name.
    window: seconds per token; rate_d * window must be a whole number of samples.
    channels: per device count, one int for all or a dict by name (6 = 3-axis acc + gyro).
    adjacency: 'complete' or undirected [name_a, name_b] edges (a skeleton).
    embed: 'patch' (flattened window -> Linear) or 'stft' (dB magnitude -> Linear), per device.
    stft_fft, stft_hop: STFT size and hop in samples ('stft' only; stft_fft <= every w_d).
    target_samples: samples per channel in the target and in relative motion (default max w_d).
    mean, std: per channel standardisation; a float, one value per channel, or a dict by name.
    """

    def __init__(
        self,
        dim: int = gin.REQUIRED,
        sample_rates: Mapping[str, float] = gin.REQUIRED,
        window: float = 1.0,
        channels: int | Mapping[str, int] = 6,
        adjacency: str | Sequence[Sequence[str]] = "complete",
        embed: str = "patch",
        relative_motion: bool = True,
        graph_layers: int = 1,
        target_samples: int | None = None,
        norm_target: bool = True,
        stft_fft: int = 16,
        stft_hop: int = 4,
        mean: Constant = 0.0,
        std: Constant = 1.0,
    ):
        super().__init__()
        self.devices = tuple(sorted(sample_rates))
        self.sample_rates, self.window = dict(sample_rates), window
        if not self.devices:
            raise ValueError("IMUGraphTokenizer.sample_rates: at least one device is needed")
        self.windows = {name: self._window_samples(name, rate, window) for name, rate in sample_rates.items()}
        self.channels = self._per_device("channels", channels)
        if min(self.channels.values()) < 1 or graph_layers < 0 or (target_samples or 1) < 1:
            raise ValueError(
                f"IMUGraphTokenizer: channels {self.channels} and target_samples {target_samples} must be positive, "
                f"graph_layers {graph_layers} >= 0"
            )
        if embed not in EMBEDS:
            raise ValueError(f"IMUGraphTokenizer.embed = {embed!r}: expected one of {EMBEDS}")
        self.embed_kind = embed
        self.dim = dim
        self.norm_target = norm_target
        self.target_samples = target_samples or max(self.windows.values())
        self.max_channels = max(self.channels.values())
        self.target_dim = self.target_samples * self.max_channels
        self.register_buffer("edges", edge_index("IMUGraphTokenizer", self.devices, adjacency), persistent=False)
        self.register_buffer("mean", self._constant_table("mean", mean, pad=0.0), persistent=False)
        self.register_buffer("std", self._constant_table("std", std, pad=1.0), persistent=False)
        real = torch.tensor([[c < self.channels[n] for c in range(self.max_channels)] for n in self.devices])
        self.register_buffer("real_channels", real.float(), persistent=False)
        if embed == "stft":
            self.stft_fft, self.stft_hop = stft_fft, stft_hop
            self._check_stft()
            self.register_buffer("hann", torch.hann_window(stft_fft), persistent=False)
        self.proj = nn.ModuleDict({n: nn.Linear(self._feature_size(n), dim) for n in self.devices})
        self.motion = DifferenceMessages(self.target_dim, dim) if relative_motion else None
        self.graph = nn.ModuleList(GraphLayer(dim) for _ in range(graph_layers))
        self.device_embed = nn.ParameterDict({n: nn.Parameter(torch.zeros(dim)) for n in self.devices})
        for param in self.device_embed.values():
            nn.init.trunc_normal_(param, std=0.02)

    @staticmethod
    def _window_samples(name: str, rate: float, window: float) -> int:
        samples = rate * window
        if not name or "." in name:
            raise ValueError(f"IMUGraphTokenizer.sample_rates: device name {name!r} must be non-empty without '.'")
        if samples < 1 or abs(samples - round(samples)) > 1e-6:
            raise ValueError(
                f"IMUGraphTokenizer: device {name!r} at {rate} Hz gives {samples} samples per {window} s window; "
                "it must be a whole number >= 1"
            )
        return round(samples)

    def _per_device(self, arg: str, value):
        """One value for every device, or a dict by device name that names exactly the devices."""
        if not isinstance(value, Mapping):
            return {name: value for name in self.devices}
        missing, unknown = set(self.devices) - set(value), set(value) - set(self.devices)
        if missing or unknown:
            raise ValueError(
                f"IMUGraphTokenizer.{arg}: missing devices {sorted(missing)}, unknown devices {sorted(unknown)}"
            )
        return {name: value[name] for name in self.devices}

    def _constant_table(self, arg: str, value: Constant, pad: float) -> torch.Tensor:
        """mean/std -> (devices, max_channels), padded channels get `pad`."""
        per_device = self._per_device(arg, value)
        rows = []
        for name in self.devices:
            channels = self.channels[name]
            row = per_device[name]
            row = [float(row)] * channels if isinstance(row, int | float) else [float(v) for v in row]
            if len(row) != channels:
                raise ValueError(
                    f"IMUGraphTokenizer.{arg}: device {name!r} has {channels} channels, got {len(row)} values"
                )
            rows.append(row + [pad] * (self.max_channels - channels))
        return torch.tensor(rows)

    def _check_stft(self) -> None:
        if self.stft_hop < 1:
            raise ValueError(f"IMUGraphTokenizer.stft_hop = {self.stft_hop}: must be >= 1")
        short = {n: w for n, w in self.windows.items() if w < self.stft_fft}
        if short:
            raise ValueError(f"IMUGraphTokenizer.stft_fft = {self.stft_fft} exceeds the window samples of {short}")

    def _feature_size(self, name: str) -> int:
        samples, channels = self.windows[name], self.channels[name]
        if self.embed_kind == "patch":
            return samples * channels
        frames = 1 + samples // self.stft_hop
        return channels * (self.stft_fft // 2 + 1) * frames

    def num_windows(self, signals: Mapping[str, torch.Tensor]) -> int:
        """T', checking that every device is there, (B, T_d, C_d) and cut into the same number of windows."""
        missing = [n for n in self.devices if n not in signals]
        if missing:
            raise ValueError(f"IMUGraphTokenizer: missing devices {missing}; got {sorted(signals)} (logs that name "
                             "their devices otherwise: MediaDataset.imu_devices = {model device: log device})")
        counts, shapes = {}, {}
        for name in self.devices:
            shape, w, c = tuple(signals[name].shape), self.windows[name], self.channels[name]
            shapes[name] = shape
            if len(shape) != 3 or shape[2] != c or shape[1] % w or shape[1] == 0:
                raise ValueError(
                    f"IMUGraphTokenizer: device {name!r} expected (B, T, {c}) with T a positive multiple of "
                    f"{w} samples, got {shape}"
                )
            counts[name] = shape[1] // w
        if len(set(counts.values())) > 1 or len({s[0] for s in shapes.values()}) > 1:
            detail = ", ".join(f"{n} {shapes[n]} -> {counts[n]} windows" for n in self.devices)
            raise ValueError(f"IMUGraphTokenizer: devices must share the batch size and number of windows: {detail}")
        return counts[self.devices[0]]

    def figure_signals(self, signals: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{device: (B, T_d, C_d)} standardised per channel with `mean` and `std`, as the tokens see them."""
        return {name: (signals[name] - self.mean[d, :self.channels[name]].to(signals[name]))
                / self.std[d, :self.channels[name]].to(signals[name]) for d, name in enumerate(self.devices)}

    def figure_windows(self, signals: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The targets before `norm_target`: (B, N, target_samples, max_channels), token t * devices + d
        the standardised window t of device d resampled to target_samples, channels zero-padded."""
        steps, standardised = self.num_windows(signals), self.figure_signals(signals)
        windows = [F.pad(resample(rearrange(standardised[name], "b (t w) c -> b t w c", t=steps), self.target_samples),
                         (0, self.max_channels - self.channels[name])) for name in self.devices]
        return rearrange(torch.stack(windows, dim=2), "b t v s c -> b (t v) s c")

    def figure_restore(self, predicted: torch.Tensor, truth: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Predictions (Q, target_samples * max_channels) of the windows `truth` (Q, target_samples,
        max_channels) at token ids `tokens` (Q,) -> (Q, target_samples, max_channels) in truth's space:
        with `norm_target` scaled back with each true window's own mean and std over its real
        channels (MAE's visualisation); padded channels 0."""
        predicted = rearrange(predicted, "q (s c) -> q s c", c=self.max_channels)
        real = self.real_channels.to(truth)[tokens % len(self.devices)][:, None]  # (Q, 1, C)
        if not self.norm_target:
            return predicted * real
        mean, std = token_statistics(truth, real)
        return (predicted * std + mean) * real

    def forward(self, signals: Mapping[str, torch.Tensor]) -> Tokens:
        steps = self.num_windows(signals)
        nodes, common = [], []
        for d, name in enumerate(self.devices):
            channels = self.channels[name]
            x = (signals[name] - self.mean[d, :channels]) / self.std[d, :channels]
            windows = rearrange(x, "b (t w) c -> b t w c", t=steps)
            if self.embed_kind == "patch":
                features = rearrange(windows, "b t w c -> b t (w c)")
            else:
                features = spectrogram_db(windows, self.stft_fft, self.stft_hop, self.hann)
            nodes.append(self.proj[name](features.to(self.proj[name].weight.dtype)))  # FSDP's bf16 parameters
            common.append(F.pad(resample(windows, self.target_samples), (0, self.max_channels - channels)))
        h = torch.stack(nodes, dim=2)  # (B, T', V, D)
        common = torch.stack(common, dim=2)  # (B, T', V, S, C)
        if self.motion is not None:
            h = h + self.motion(rearrange(common, "b t v s c -> b t v (s c)"), self.edges)
        for layer in self.graph:
            h = layer(h, self.edges)
        devices = torch.stack([self.device_embed[name] for name in self.devices])
        time = sincos_pos_embed((steps,), self.dim, "joint", h.device).to(h.dtype)
        h = h + devices + time[:, None]
        target = normalize_tokens(common, self.real_channels[:, None]) if self.norm_target else common
        grid = (steps, len(self.devices))
        return Tokens(
            embed=rearrange(h, "b t v d -> b (t v) d"),
            target=rearrange(target, "b t v s c -> b (t v) (s c)"),
            grid=grid,
        )
