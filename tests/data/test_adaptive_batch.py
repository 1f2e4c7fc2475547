"""The adaptive batch: its schedule from a model's token counts, and its sampler through Accelerate."""

import gin
import pytest
import torch
from accelerate.data_loader import prepare_data_loader, skip_first_batches
from torch.utils.data import DataLoader, IterableDataset, default_collate

from mmmae.config import parse_config
from mmmae.data.adaptive_batch import AdaptiveBatch, StepBatchSampler, model_token_counts
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.eval.evaluate import initial_model
from mmmae.masking.rng import MaskRNG
from mmmae.train import mask_seed
from tests.conftest import MICRO_GIN

CURRICULUM = ["video/TubeletTokenizer.patch = 4", "video/RatioCurriculum.masker = @video/TubeMasking",
              "video/RatioCurriculum.start = 0.5", "video/RatioCurriculum.end = 0.875",
              "video/RatioCurriculum.steps = 8", "video/Modality.masker = @video/RatioCurriculum()"]


class Indices(torch.utils.data.Dataset):
    """Sample i is the tensor i: a loader's batches show which samples it drew."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor(index)


def test_batch_times_cost_stays_at_step_zeros_within_one_sample():
    policy = AdaptiveBatch(encoder_cost=3.0, decoder_cost=1.0, sample_cost=48.0)
    counts = [{"video": (k, 64 - k, 64), "audio": (k // 2, 32 - k // 2, 32)} for k in (32, 29, 23, 17, 11, 7, 3, 1)]
    sizes = policy.batch_sizes(counts, batch_size=10)
    assert sizes[0] == 10 and sizes == sorted(sizes)
    assert sizes[-1] == 16  # 10 x (3*32 + 32 + 3*16 + 16 + 48) / (3*1 + 63 + 3*0 + 32 + 48) = 10 x 240 / 146
    reference = 10 * policy.cost(counts[0])
    for size, c in zip(sizes, counts):
        assert abs(size * policy.cost(c) - reference) <= policy.cost(c) / 2  # round() to the nearest sample


def test_the_batch_is_at_least_one_sample():
    assert AdaptiveBatch().batch_sizes([{"video": (1, 0, 1)}, {"video": (1000, 0, 1000)}], batch_size=2) == [2, 1]


@pytest.mark.parametrize("costs", [{"encoder_cost": -1.0}, {"decoder_cost": float("nan")},
                                   {"encoder_cost": 0.0, "decoder_cost": 0.0, "sample_cost": 0.0}])
def test_costs_that_define_no_schedule_are_refused(costs):
    with pytest.raises(ValueError, match="AdaptiveBatch"):
        AdaptiveBatch(**costs)


def gin_model():
    return gin.query_parameter("pretrain.model").scoped_configurable_fn


def test_token_counts_follow_the_models_curriculum_and_leave_the_rng_alone():
    parse_config([MICRO_GIN], CURRICULUM)
    model = initial_model(gin_model(), 0)
    state = torch.get_rng_state()
    counts = model_token_counts(model, MovingDigits(num_samples=4), steps=10, grad_accum=1, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    visible = [c["video"][0] for c in counts]
    assert [c["video"][2] for c in counts] == [32] * 10  # 2 x 4 x 4 tubelets
    assert visible[0] == 16 and visible[-1] == 4  # 16 tubes of 2: 50 %, then 87.5 % hidden from step 8 on
    assert visible == sorted(visible, reverse=True)
    assert all(k + q == 32 for k, q, _ in (c["video"] for c in counts))
    sizes = AdaptiveBatch().batch_sizes(counts, batch_size=3)
    assert sizes[0] == 3 and sizes[-1] == 12  # the visible-token count alone: 3 x 16 / 4


def test_token_counts_are_those_of_the_masks_training_draws_at_each_micro_step():
    parse_config([MICRO_GIN], ["video/Modality.masker = @MaskGITMasking()"])  # a random count per micro-batch
    model, data = initial_model(gin_model(), 0), MovingDigits(num_samples=4)
    counts = model_token_counts(model, data, steps=3, grad_accum=2, seed=5)
    batch = default_collate([data[0], data[1]])
    drawn = []
    for micro in range(6):  # as train_loop draws them, here on the second of two processes
        rng = MaskRNG.seeded(mask_seed(5, micro), rank=1, world_size=2, step=micro // 2)
        plan = model.modalities["video"].mask(model.modalities["video"].tokenize(batch["video"]), batch, rng)
        drawn.append((plan.keep.shape[1], plan.predict.shape[1]))
    assert [c["video"][:2] for c in counts] == drawn
    assert len(set(drawn)) > 1  # the count changes between micro-steps: a plan on other seeds would miss it


def batches_of(loader) -> list[list[int]]:
    return [batch.tolist() for batch in loader]


def test_two_processes_draw_disjoint_samples_each_step_and_resume_exactly():
    sizes = [2, 3, 3, 4, 5, 6, 6, 7]  # x 2 processes: from step 4 on, each step's rest of a pass is too short
    sampler = StepBatchSampler(sizes, num_samples=16, processes=2, seed=3)
    ranks = [prepare_data_loader(DataLoader(Indices(16), batch_sampler=sampler), num_processes=2, process_index=r,
                                 put_on_device=False) for r in (0, 1)]
    drawn = [batches_of(loader) for loader in ranks]
    assert [len(b) for b in drawn[0]] == sizes and [len(b) for b in drawn[1]] == sizes
    for first, second in zip(*drawn):
        assert not set(first) & set(second) and len(set(first + second)) == len(first + second)
    for rank, loader in enumerate(ranks):  # the train loop's resume: skip the micro-steps already taken
        assert batches_of(skip_first_batches(loader, 5)) == drawn[rank][5:]
    again = StepBatchSampler(sizes, num_samples=16, processes=2, seed=3)
    assert list(again) == list(sampler)  # a new process (a resumed run) rebuilds the same stream


def test_one_process_walks_whole_permutations():
    sampler = StepBatchSampler([4, 4, 4, 4, 5], num_samples=16, processes=1, seed=0)
    batches = batches_of(prepare_data_loader(DataLoader(Indices(16), batch_sampler=sampler), num_processes=1,
                                             process_index=0, put_on_device=False))
    assert sorted(sum(batches[:4], [])) == list(range(16))  # one pass, each sample once
    assert len(set(batches[4])) == 5 and batches[4] != sum(batches[:4], [])[:5]  # the next pass, in a new order


def test_a_step_larger_than_the_dataset_is_refused_naming_the_step():
    with pytest.raises(ValueError, match=r"micro-step 2 needs 9 samples on each of 2 process\(es\)"):
        StepBatchSampler([4, 8, 9], num_samples=16, processes=2, seed=0)


def test_a_stream_is_refused():
    class Stream(IterableDataset):
        def __iter__(self):
            yield {}

    with pytest.raises(ValueError, match="Stream is a stream"):
        AdaptiveBatch().sampler(torch.nn.Linear(1, 1), Stream(), 2, 4, 1, 1, 0)
