"""DiffMAE's decoder: the hidden tokens' targets, noised, denoised by cross-attention to the visible ones."""


import gin
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmmae.nn.cross_decoder import CrossSelfBlock
from mmmae.nn.diffusion_schedule import DiffusionSchedule
from mmmae.nn.pos_embed import position_table, sincos_1d
from mmmae.types import Decoded, MaskPlan

PREDICTIONS = ("x0", "epsilon")


@gin.configurable(module="mmmae")
class DiffusionDecoder(nn.Module):
    """Queries at plan.predict: Linear(x_t) + pos(predict) + MLP(sin-cos(t)); each CrossSelfBlock
    cross-attends to the visible tokens (embedded + pos(keep), the encoded class token first when the
    modality has one) -> head -> x0 or ε (`prediction`).

    Training: t ~ U{0..T-1} per sample, ε ~ N(0, I) (torch's global generator, seeded by the trainer,
    as drop_path), x_t = schedule.noised(target, t, ε); the answer is Decoded(prediction, target=ε) for
    ε-prediction, Decoded(prediction) for x0 (scored against the tokens' own target, and drawn in the
    run's figures as any reconstruction). `sample` runs DDIM / DDPM from noise. in_dim and out_dim
    are filled in by the Modality.
    checkpointing: while training, run each block under activation checkpointing.
    """

    takes_target = True  # the model passes target=(B, Q, P), the tokens' target at plan.predict

    def __init__(self, in_dim: int, out_dim: int, dim: int = gin.REQUIRED, depth: int = gin.REQUIRED,
                 heads: int = gin.REQUIRED, schedule: DiffusionSchedule | None = None, prediction: str = "x0",
                 mlp_ratio: float = 4.0, pos_embed: str = "joint", checkpointing: bool = False):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"DiffusionDecoder.prediction = {prediction!r} is not one of {PREDICTIONS}")
        if dim % 2:
            raise ValueError(f"DiffusionDecoder.dim must be even (the timestep embedding), got {dim}")
        self.schedule = DiffusionSchedule() if schedule is None else schedule
        self.prediction, self.checkpointing = prediction, checkpointing
        self.embed = nn.Linear(in_dim, dim, bias=False)
        self.noised_embed = nn.Linear(out_dim, dim)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.positions = position_table(pos_embed, dim, owner="DiffusionDecoder.pos_embed")
        self.blocks = nn.ModuleList([CrossSelfBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan,
                cls: torch.Tensor | None = None, target: torch.Tensor | None = None) -> Decoded:
        """encoded (B, K, in_dim) at plan.keep, target (B, Q, out_dim) at plan.predict -> Decoded: the
        denoiser's output at a random noise level and what it is scored against (x0 or ε)."""
        if target is None:
            raise ValueError("DiffusionDecoder is trained on the noised target: call it with target=(B, Q, P) "
                             "(MaskedAutoencoder does, as it takes_target)")
        t = torch.randint(0, self.schedule.timesteps, target.shape[:1], device=target.device)
        noise = torch.randn_like(target)
        output = self.denoise(self.schedule.noised(target, t, noise), t, self.context(encoded, grid, plan, cls),
                              grid, plan)
        return Decoded(output, target=None if self.prediction == "x0" else noise)

    @torch.no_grad()
    def sample(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan, *,
               generator: torch.Generator | None = None, steps: int = 50, sampler: str = "ddim", eta: float = 0.0,
               cls: torch.Tensor | None = None) -> torch.Tensor:
        """A draw of the hidden tokens (B, Q, out_dim) at plan.predict, in the target space, by `sampler`
        ('ddim' with `eta`, 'ddpm') over `steps` timesteps; noise from `generator`."""
        context = self.context(encoded, grid, plan, cls)

        def predict_x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            output = self.denoise(x_t, t, context, grid, plan)
            return output if self.prediction == "x0" else self.schedule.x0_from_epsilon(x_t, t, output)

        like = encoded.new_empty(plan.predict.shape + (self.head.out_features,))
        return self.schedule.sample(predict_x0, like, steps=steps, sampler=sampler, eta=eta, generator=generator)

    def context(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan,
                cls: torch.Tensor | None) -> torch.Tensor:
        """The visible tokens the queries attend to: (B, K (+1), dim)."""
        x = self.embed(encoded) + self.positions(grid, encoded.device).to(encoded.dtype)[plan.keep]
        return x if cls is None else torch.cat([self.embed(cls[:, None]), x], dim=1)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, grid: tuple[int, ...],
                plan: MaskPlan) -> torch.Tensor:
        """x_t (B, Q, out_dim) at plan.predict and timesteps t (B,) -> the head's output (B, Q, out_dim)."""
        x_t = x_t.to(self.noised_embed.weight.dtype)  # FSDP's bf16 parameters; the target stays fp32
        pos = self.positions(grid, x_t.device).to(x_t.dtype)[plan.predict]
        time = self.time_mlp(sincos_1d(t, pos.shape[-1]).to(x_t.dtype))
        q = self.noised_embed(x_t) + pos + time[:, None]
        for block in self.blocks:
            q = checkpoint(block, q, context, use_reentrant=False) if self.checkpointing and self.training \
                else block(q, context)
        return self.head(self.norm(q))
