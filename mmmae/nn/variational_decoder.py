"""SiamMCVAE's variational decoder: SiamMAE's cross-self decoder with a conditional-VAE latent, so that
one past frame has many possible futures."""

import gin
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from mmmae.nn.cross_decoder import CrossSelfBlock, CrossViewDecoder
from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import Decoded, MaskPlan, Tokens


class LatentGaussian(nn.Module):
    """Queries (B, N, D) cross-attend to context (B, M, D) in one cross-self block, are mean-pooled and
    read out as a diagonal Gaussian over the latent (B, latent)."""

    def __init__(self, dim: int, heads: int, latent: int, mlp_ratio: float):
        super().__init__()
        self.block = CrossSelfBlock(dim, heads, mlp_ratio)
        self.head = nn.Linear(dim, 2 * latent)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> Normal:
        mean, log_var = self.head(self.block(queries, context).mean(1)).float().chunk(2, dim=-1)
        return Normal(mean, torch.exp(0.5 * log_var), validate_args=False)  # no data-dependent check (FakeTensor)


@gin.configurable(module="mmmae")
class VariationalDecoder(CrossViewDecoder):
    """A conditional VAE over the future frame `target` given the past frame `context` (SiamMCVAE;
    gin: `MaskedAutoencoder.decoder = @VariationalDecoder`).

    prior p(z | past): the past frame's encoded tokens attend to themselves (`LatentGaussian`).
    posterior q(z | past, future): every token of the future frame, hidden ones included (its target,
    `tokens[target].target` (B, N, P), with the decoder's positions), cross-attends to the past
    frame's encoded tokens. z (B, latent) is drawn from the posterior by the reparameterisation trick
    while training (its mean in eval mode), projected to the decoder width and added to every query
    of the SiamMAE decoder (visible and mask tokens, after their positions; the notes' "proj(z) +
    mask tokens"), whose embedding, cross-self blocks, norm and head are `CrossViewDecoder`'s. The
    forward returns `Decoded(prediction, terms={'kl': KL(q || p) (B,)})`; weigh the KL with
    `DecoderTerm(modality=target, term='kl', weight=@LinearRamp())`. `free_bits` > 0 counts each
    latent dimension's KL as at least that many nats (per sample), so that no gradient pushes the
    posterior onto the prior below it (Kingma et al. 2016; against posterior collapse). `sample`
    draws z from the prior and never reads the future's hidden tokens. checkpointing: while training,
    run each decoder block under activation checkpointing (as CrossViewDecoder does).
    """

    def __init__(self, modalities: dict[str, nn.Module], context: str = "view1", target: str = "view2",
                 dim: int = gin.REQUIRED, depth: int = gin.REQUIRED, heads: int = gin.REQUIRED,
                 latent: int = gin.REQUIRED, free_bits: float = 0.0, mlp_ratio: float = 4.0,
                 dropout: float = 0.0, pos_embed: str = "joint", checkpointing: bool = False):
        super().__init__(modalities, context, target, dim, depth, heads, mlp_ratio, dropout, pos_embed, checkpointing)
        if free_bits < 0:
            raise ValueError(f"VariationalDecoder.free_bits = {free_bits}: need nats per latent dimension >= 0")
        self.free_bits = free_bits
        self.future_embed = nn.Linear(modalities[target].target_dim, dim)
        self.prior = LatentGaussian(dim, heads, latent, mlp_ratio)
        self.posterior = LatentGaussian(dim, heads, latent, mlp_ratio)
        self.latent_embed = nn.Linear(latent, dim)

    def prior_of(self, encoded: dict[str, torch.Tensor]) -> Normal:
        """p(z | past) from the past frame's encoded tokens only: (B, latent)."""
        past = self.embed(encoded[self.context])
        return self.prior(past, past)

    def posterior_of(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens]) -> Normal:
        """q(z | past, future) from the future's target at every token and the past's encoded tokens."""
        future = tokens[self.target]
        queries = self.future_embed(future.target.to(self.future_embed.weight.dtype))
        queries = queries + sincos_pos_embed(future.grid, queries.shape[-1], self.pos_embed,
                                             queries.device).to(queries.dtype)
        return self.posterior(queries, self.embed(encoded[self.context]))

    def latent_shift(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent), float32 -> (B, dim) in the decoder's dtype: what every query of the decoder adds."""
        return self.latent_embed(z.to(self.latent_embed.weight.dtype))

    def forward(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
                present: dict[str, torch.Tensor]) -> dict[str, Decoded]:
        """encoded {m: (B, K_m, in_dim)} -> {target: Decoded((B, Q, P), terms={'kl': (B,)})}."""
        prior, posterior = self.prior_of(encoded), self.posterior_of(encoded, tokens)
        z = posterior.rsample() if self.training else posterior.mean
        prediction = self.decode_target(encoded, tokens, plans, shift=self.latent_shift(z))
        kl = kl_divergence(posterior, prior).clamp_min(self.free_bits).sum(-1)
        return {self.target: Decoded(prediction, terms={"kl": kl})}

    def sample(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
               present: dict[str, torch.Tensor], *, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """One future per sample with z ~ p(z | past) (its spread scaled by `temperature`) ->
        {target: (B, Q, P)} at plans[target].predict. Several futures: several calls on one generator.
        Differentiable (`mmmae.score` scores the prediction at temperature 0; `fill` runs it without grad)."""
        prior = self.prior_of(encoded)
        noise = torch.randn(prior.mean.shape, generator=generator, device=prior.mean.device)
        z = prior.mean + temperature * prior.stddev * noise
        return {self.target: self.decode_target(encoded, tokens, plans, shift=self.latent_shift(z))}
