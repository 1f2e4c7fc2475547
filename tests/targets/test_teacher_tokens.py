"""Teacher tokens as targets: the teacher's own forward, at a block, resampled, never trained."""

import copy

import gin
import pytest
import torch
import torch.nn.functional as F

from mmmae import config as mmmae_config
from mmmae.config import parse_config
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.targets.teacher_tokens import TeacherTokens, resample_tokens
from mmmae.types import Target, Tokens
from tests.conftest import MICRO_GIN
from tests.targets.teachers import clip, save_micro_teacher


@pytest.fixture
def teacher(tmp_path):
    return save_micro_teacher(tmp_path)


def tokens_on(grid) -> Tokens:
    n = int(torch.tensor(grid).prod())
    return Tokens(torch.zeros(2, n, 4), None, tuple(grid))


def test_final_tokens_equal_the_teachers_own_encoding(teacher):
    directory, model = teacher
    target = TeacherTokens(str(directory), layer_norm=False)
    assert isinstance(target, Target) and target.dim == 32
    video = clip()
    expected, _ = model.encode({"video": video}, "video")
    torch.testing.assert_close(target(video, tokens_on((2, 2, 2))), expected, rtol=0, atol=0)
    normalised = TeacherTokens(str(directory))(video, tokens_on((2, 2, 2)))
    torch.testing.assert_close(normalised, F.layer_norm(expected, (32,)), rtol=0, atol=0)


def test_tokens_at_a_block_are_that_blocks_output_without_the_final_norm(teacher):
    directory, model = teacher
    video = clip()
    x = model.modalities["video"].tokenize(video).embed
    x = model.encoder.blocks[0](x)
    got = TeacherTokens(str(directory), block=1, layer_norm=False)(video, tokens_on((2, 2, 2)))
    torch.testing.assert_close(got, x, rtol=0, atol=0)


def test_a_block_outside_the_teacher_or_a_modality_it_lacks_names_the_binding(teacher):
    directory, _ = teacher
    with pytest.raises(ValueError, match=r"TeacherTokens.block = 3: .* blocks 1..2"):
        TeacherTokens(str(directory), block=3)
    with pytest.raises(ValueError, match=r"TeacherTokens.modality = 'audio'.*\['video'\]"):
        TeacherTokens(str(directory), modality="audio")


def test_resampling_interpolates_each_axis_linearly():
    x = torch.tensor([[[0.0], [4.0]]])  # (B=1, N=2, D=1) on a grid (2,)
    # align_corners False: output centres at 1/8, 3/8, 5/8, 7/8 of the span of the two inputs' centres
    torch.testing.assert_close(resample_tokens(x, (2,), (4,)), torch.tensor([[[0.0], [1.0], [3.0], [4.0]]]))
    assert resample_tokens(x, (2,), (2,)) is x
    lattice = torch.tensor([0.0, 4.0])[:, None, None].expand(2, 2, 2)  # varies over time only
    tokens = lattice.reshape(1, 8, 1)
    resampled = resample_tokens(tokens, (2, 2, 2), (4, 3, 1)).reshape(4, 3, 1)
    torch.testing.assert_close(resampled, torch.tensor([0.0, 1.0, 3.0, 4.0])[:, None, None].expand(4, 3, 1))
    with pytest.raises(ValueError, match=r"grid \(2, 2, 2\) cannot be resampled to the student's \(8,\)"):
        resample_tokens(tokens, (2, 2, 2), (8,))


def test_a_student_on_another_grid_gets_the_teachers_tokens_resampled(teacher):
    directory, model = teacher
    video = clip()
    expected, _ = model.encode({"video": video}, "video")
    got = TeacherTokens(str(directory), layer_norm=False)(video, tokens_on((2, 4, 4)))
    assert got.shape == (2, 32, 32)
    torch.testing.assert_close(got, resample_tokens(expected, (2, 2, 2), (2, 4, 4)), rtol=0, atol=0)


def student(directory) -> MaskedAutoencoder:
    """The micro quickstart as a student (tubelet patch 4: a (2, 4, 4) grid) of `directory`'s teacher."""
    parse_config([MICRO_GIN], ["video/TubeletTokenizer.patch = 4", f"video/TeacherTokens.teacher = '{directory}'",
                               "video/Modality.target = @video/TeacherTokens()"])
    return MaskedAutoencoder()


def test_no_gradient_reaches_the_teacher_and_it_is_not_in_the_student(teacher):
    directory, _ = teacher
    model = student(directory).train()
    target = model.modalities["video"].target
    teacher_parameters = list(target.teacher.model.parameters())
    assert model.modalities["video"].decoder.head.out_features == 32 == model.modalities["video"].target_dim
    out = model({"video": clip()}, MaskRNG.seeded(0, "cpu"))
    assert out.outputs["video"].tokens.target.shape == (2, 32, 32)
    assert not out.outputs["video"].tokens.target.requires_grad
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher_parameters)
    assert not target.teacher.model.training
    owned = {id(p) for p in model.parameters()}
    assert not any(id(p) in owned for p in teacher_parameters)
    assert not any("teacher" in key or "target" in key for key in model.state_dict())
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in model.state_dict().values())


def test_encoding_alone_runs_no_teacher(teacher, monkeypatch):
    directory, _ = teacher
    model = student(directory).eval()
    monkeypatch.setattr(type(model.modalities["video"].target), "__call__", lambda *a: pytest.fail("teacher ran"))
    assert model.features({"video": clip()}, "video").shape == (2, 32)


def test_the_students_config_is_unchanged_by_building_its_teacher(tmp_path):
    directory, _ = save_micro_teacher(tmp_path, ("pretrain.steps = 99", "video/Modality.cls_token = True"))
    model = student(directory)
    assert model.modalities["video"].tokenizer.target_kernel == (2, 4, 4)  # not the teacher's patch 8
    assert model.modalities["video"].cls_token is None
    assert model.modalities["video"].target.teacher.model.modalities["video"].cls_token is not None
    assert gin.query_parameter("pretrain.steps") == 6 and gin.config_is_locked()
    assert mmmae_config._parsed["files"] == [MICRO_GIN]
    operative = gin.operative_config_str()
    assert "video/Modality.target = @video/TeacherTokens()" in operative and "cls_token = True" not in operative
    with gin.unlock_config():  # later bindings still go to the student's config
        gin.bind_parameter("video/TeacherTokens.layer_norm", False)
    assert gin.query_parameter("video/TeacherTokens.layer_norm") is False


def test_a_copy_of_the_student_shares_its_frozen_teacher(teacher):
    directory, _ = teacher
    model = student(directory)
    copied = copy.deepcopy(model)
    assert copied.modalities["video"].target.teacher is model.modalities["video"].target.teacher
