"""The teacher's pooled embedding: its encoder's pooled features, or its contrastive space; one teacher per source."""

import pytest
import torch

from mmmae.targets.teacher_embedding import TeacherEmbedding
from mmmae.targets.teacher_tokens import TeacherTokens
from mmmae.types import EmbeddingTarget
from tests.targets.teachers import clip, save_micro_teacher

CONTRASTIVE = ("MovingDigits.modalities = ['video', 'text']", "text/Modality.masker = @text/SpanMasking()",
               "Contrastive.modalities = ['video', 'text']", "Contrastive.in_dim = %ENC_DIM",
               "Contrastive.proj_dim = 8",
               "include 'modalities/text.gin'",
               "MaskedAutoencoder.modalities = [@video/Modality(), @text/Modality()]",
               "MaskedAutoencoder.objectives = [@video/Reconstruction(), @Contrastive()]")


def test_the_pooled_embedding_is_the_teachers_pooled_features(tmp_path):
    directory, model = save_micro_teacher(tmp_path)
    target = TeacherEmbedding(str(directory))
    assert isinstance(target, EmbeddingTarget) and target.dim == 32
    video = clip()
    torch.testing.assert_close(target(video), model.features({"video": video}, "video"), rtol=0, atol=0)


def test_the_contrastive_embedding_is_the_teachers_video_text_embedding(tmp_path):
    directory, model = save_micro_teacher(tmp_path, CONTRASTIVE)
    target = TeacherEmbedding(str(directory), contrastive_with="text")
    assert target.dim == 8
    video = clip()
    encoded, valid = model.encode({"video": video}, "video")
    expected = model.objectives[1].embed("video", encoded, valid)
    torch.testing.assert_close(target(video), expected, rtol=0, atol=0)
    assert torch.allclose(target(video).norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match=r"contrastive_with = 'audio': .* no contrastive objective between 'video' "
                                         r"and 'audio' \(it has \[\('video', 'text'\)\]\)"):
        TeacherEmbedding(str(directory), contrastive_with="audio")


def test_targets_naming_one_source_share_one_teacher_and_one_pass(tmp_path, monkeypatch):
    directory, _ = save_micro_teacher(tmp_path)
    tokens, pooled = TeacherTokens(str(directory)), TeacherEmbedding(str(directory))
    assert tokens.teacher is pooled.teacher
    calls = []
    encoder = tokens.teacher.model.encoder
    forward = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    video = clip()
    tokens(video, type("T", (), {"grid": (2, 2, 2)})())
    pooled(video)
    assert len(calls) == 1
