"""FSDP in bf16 keeps the batch as loaded (float32) and gives every module bf16 parameters
(mmmae.sharding: cast_forward_inputs=False): every module that projects raw inputs or float32
activations casts them to its weight's dtype. Stood in for here by a model whose parameters are bf16."""

import gin
import pytest
import torch
from torch.utils.data import default_collate

from mmmae.config import GIN_DIR, parse_config
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from tests.test_recipes import MICRO


# the IMU graph (raw signals into its edge MLP), NT-Xent's projector (float32 batch-norm outputs),
# and a tubelet + audio model (tokenizers)
@pytest.mark.parametrize("recipe", ["quickstart.gin", "vic_mae.gin", "audiovisual_mae.gin"])
def test_a_recipe_trains_a_step_with_bf16_parameters_on_a_float32_batch(recipe):
    parse_config([str(GIN_DIR / "recipes" / recipe), MICRO])
    torch.manual_seed(0)
    model = MaskedAutoencoder()
    data = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    batch = default_collate([data[i] for i in range(4)])
    for parameter in model.parameters():
        parameter.data = parameter.data.to(torch.bfloat16)
    out = model(batch, MaskRNG.seeded(0))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(grad.dtype == torch.bfloat16 for grad in grads)
