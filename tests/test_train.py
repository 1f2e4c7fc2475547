"""The Accelerate pretraining loop: files, learning, exact resume, safe checkpoints, refusals."""

import errno
import json
import shutil
from pathlib import Path

import gin
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file
from torch._dynamo.utils import counters
from transformers import get_cosine_with_min_lr_schedule_with_warmup

import mmmae.checkpoint
import mmmae.train
from mmmae.checkpoint import latest_checkpoint
from mmmae.config import parse_config
from mmmae.eval.evaluate import evaluate_run, load_source
from mmmae.train import RunDirError, pretrain
from tests.conftest import MICRO_GIN
from tests.interrupt import Interrupted, run_until_interrupted

MICRO_OVERRIDES = Path(__file__).parent / "fixtures" / "micro_overrides.gin"


def train(run_dir, *params, resume=False):
    parse_config([MICRO_GIN], list(params))
    return pretrain(output_dir=str(run_dir), resume=resume)


def weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("uninterrupted")
    parse_config([MICRO_GIN], ["pretrain.log_every = 1"])
    pretrain(output_dir=str(run))
    return run


def test_run_directory_holds_everything(uninterrupted):
    run = uninterrupted
    assert (run / "config.gin").read_text().count("pretrain.steps = 6") == 1
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert (run / "figures" / "video_step00000003.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert latest_checkpoint(run).name == "step_00000006"
    assert set(weights(run)) >= {"encoder.norm.weight", "modalities.video.decoder.mask_token"}


def test_loss_decreases_over_a_short_run(tmp_path):
    train(tmp_path, "pretrain.steps = 30", "pretrain.batch_size = 16", "pretrain.base_lr = 1e-2",
          "pretrain.log_every = 10", "pretrain.save_every = 30", "video/TubeletTokenizer.norm_target = False")
    curve = losses(tmp_path)
    assert curve[-1] < 0.75 * curve[0], curve


def test_resume_after_interruption_is_bitwise_equal(uninterrupted, tmp_path, monkeypatch):
    run_until_interrupted(lambda: train(tmp_path, "pretrain.log_every = 1"), monkeypatch)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    train(tmp_path, "pretrain.log_every = 1", resume=True)
    expected, resumed = weights(uninterrupted), weights(tmp_path)
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert losses(tmp_path) == losses(uninterrupted)


def test_kill_during_checkpoint_write_keeps_the_previous_checkpoint(uninterrupted, tmp_path, monkeypatch):
    original = Accelerator.save_state

    def crash_while_writing_step_6(self, output_dir, **kwargs):
        if "step_00000006" in str(output_dir):
            original(self, output_dir, **kwargs)
            with open(f"{output_dir}/model.safetensors", "r+b") as f:
                f.truncate(100)
            raise Interrupted
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", crash_while_writing_step_6)
    with pytest.raises(Interrupted):
        train(tmp_path, "pretrain.log_every = 1")
    monkeypatch.setattr(Accelerator, "save_state", original)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert not (tmp_path / "model.safetensors").exists()
    train(tmp_path, "pretrain.log_every = 1", resume=True)
    expected, resumed = weights(uninterrupted), weights(tmp_path)
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert not list((tmp_path / "checkpoints").glob("*.partial"))


def test_resume_with_a_different_config_is_refused_with_the_difference(uninterrupted):
    with pytest.raises(RunDirError, match="different config") as error:
        train(uninterrupted, "pretrain.log_every = 1", "pretrain.base_lr = 0.1", resume=True)
    assert "-pretrain.base_lr = 0.0015" in str(error.value) and "+pretrain.base_lr = 0.1" in str(error.value)


def test_training_into_an_existing_run_without_resume_is_refused(uninterrupted):
    with pytest.raises(RunDirError, match="pass --resume"):
        train(uninterrupted, "pretrain.log_every = 1")


def test_sizes_that_do_not_divide_fail_before_the_run_directory_exists(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"H=16 is not a multiple of 6; W=16 is not a multiple of 6"):
        train(run, "video/TubeletTokenizer.patch = 6")
    assert not run.exists()


def test_bf16_mixed_precision_runs_on_tiny_shapes(tmp_path):
    summary = train(tmp_path, "pretrain.steps = 2", "pretrain.mixed_precision = 'bf16'", "pretrain.save_every = 2")
    assert summary["steps"] == 2
    assert all(v.dtype == torch.float32 for v in weights(tmp_path).values()), "master weights stay float32"
    assert all(torch.isfinite(torch.tensor(loss)) for loss in losses(tmp_path))


def test_a_compiled_run_trains_as_the_eager_one(tmp_path):
    """pretrain.dynamo_backend compiles the model (Accelerate's TorchDynamoPlugin); the weights
    it saves are the plain model's, under their own names, and match an uncompiled run."""
    settings = ("pretrain.steps = 2", "pretrain.save_every = 2")
    train(tmp_path / "eager", *settings)
    AcceleratorState._reset_state(reset_partial_state=True)  # one run per process, as under `mmmae train`
    GradientState._reset_state()
    torch._dynamo.reset()
    counters.clear()
    train(tmp_path / "compiled", *settings, "pretrain.dynamo_backend = 'eager'")
    assert counters["stats"]["unique_graphs"] >= 1, "the model did not run under torch.compile"
    torch._dynamo.reset()
    eager, compiled = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert compiled.keys() == eager.keys()
    for name, value in eager.items():
        torch.testing.assert_close(compiled[name], value, atol=1e-5, rtol=0, msg=name)
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), abs=1e-5)


class AudioWithNaN(torch.utils.data.Dataset):
    """MovingDigits with audio whose sample 1 holds a NaN."""

    def __init__(self):
        from mmmae.data.moving_digits.dataset import MovingDigits

        self.data = MovingDigits(split="train", num_samples=8, frames=4, size=16, digit_size=8,
                                 modalities=("video", "audio", "imu", "text"))

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        sample = self.data[index]
        if index == 1:
            sample["audio"][100] = float("nan")
        return sample


def test_non_finite_signals_are_reported_and_not_trained_on(tmp_path, caplog):
    parse_config(["recipes/quickstart.gin", str(MICRO_OVERRIDES)],
                 ["pretrain.batch_size = 8", "pretrain.log_every = 1", "evaluations.retrievals = []"])
    with gin.unlock_config():
        gin.bind_parameter("pretrain.dataset", AudioWithNaN)
    with caplog.at_level("WARNING"):
        pretrain(output_dir=str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["non_finite_dropped"] == 1 and r["audio_reconstruction_skipped"] == 1 for r in records)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert "samples [1] hold NaN or Inf" in caplog.text


def test_maskers_see_the_optimizer_step(tmp_path, monkeypatch):
    """A ratio curriculum over the 6 micro steps: the trainer tells the masker which step it trains."""
    seen = []
    seeded = mmmae.train.MaskRNG.seeded

    def recording(*args, **kwargs):
        rng = seeded(*args, **kwargs)
        seen.append(rng.step)
        return rng

    monkeypatch.setattr(mmmae.train.MaskRNG, "seeded", recording)
    train(tmp_path, "video/RatioCurriculum.masker = @video/TubeMasking", "video/RatioCurriculum.start = 0.25",
          "video/RatioCurriculum.end = 0.75", "video/RatioCurriculum.steps = 6",
          "video/Modality.masker = @video/RatioCurriculum()")
    assert seen == [0, 0, 1, 2, 3, 4, 5]  # the check before the run, then steps 0..5
    assert "video/RatioCurriculum.end = 0.75" in (tmp_path / "config.gin").read_text()


def test_random_init_evaluation_runs_on_a_copy_sharing_no_weight(tmp_path, monkeypatch):
    """tgm.gin shares one projection head between its masker and its objective through a gin
    singleton: a model rebuilt for the random-init evaluation would get (and re-initialise) the
    trained model's head. The fresh model is a copy of the initial one instead."""
    captured = {}

    def capture(model, tasks, fresh=None):
        captured.update(model=model, fresh=fresh)
        return []

    monkeypatch.setattr(mmmae.train, "run_evaluations", capture)
    parse_config(["recipes/tgm.gin", str(MICRO_OVERRIDES)], ["evaluations.probes = [@LinearProbe()]"])
    pretrain(output_dir=str(tmp_path))
    trained, fresh = captured["model"], captured["fresh"]
    assert not {p.data_ptr() for p in trained.parameters()} & {p.data_ptr() for p in fresh.parameters()}
    assert fresh.modalities["video"].masker.scorer.projection is fresh.objectives[1].projection
    assert trained.modalities["video"].masker.scorer.projection is trained.objectives[1].projection
    saved = weights(tmp_path)
    assert all(torch.equal(saved[name], value) for name, value in trained.state_dict().items() if name in saved)


# The quickstart (all four modalities, running standardisers) at micro sizes, with a probe and
# retrievals on 8 test clips.
TINY_EVALUATIONS = ["evaluations.probes = [@LinearProbe()]", "probe_train/MovingDigits.num_samples = 16",
                    "probe_test/MovingDigits.num_samples = 8"]


def test_random_init_is_the_same_model_in_the_run_and_in_eval(tmp_path, monkeypatch):
    """The model the run's summary evaluates as random_init and the one `mmmae eval --random_init`
    rebuilds from config.gin have equal state dicts: every parameter and persistent buffer (the
    standardisers' running statistics), although config.gin lists the IMU devices in another
    order than the recipe (gin writes dicts sorted by key)."""
    captured = {}

    def capture(model, tasks, fresh=None):
        captured["fresh"] = fresh
        return []

    monkeypatch.setattr(mmmae.train, "run_evaluations", capture)
    parse_config(["recipes/quickstart.gin", str(MICRO_OVERRIDES)], TINY_EVALUATIONS)
    pretrain(output_dir=str(tmp_path))
    _, _, rebuilt = load_source(tmp_path)
    in_run = captured["fresh"]
    assert in_run.modalities["imu"].tokenizer.devices == rebuilt.modalities["imu"].tokenizer.devices  # by name
    run_state, eval_state = in_run.state_dict(), rebuilt.state_dict()
    assert run_state.keys() == eval_state.keys()
    assert not [name for name, value in run_state.items() if not torch.equal(value, eval_state[name])]
    standardizer = in_run.objectives[-1].standardizers["video"]
    assert standardizer.weight.item() == 0.0, "the run's copy was taken before any step folded in a batch"


def test_the_summary_and_eval_report_the_same_figures_pretrained_and_at_random_init(tmp_path):
    """Figures of the same models on the same data: equal, not merely close, although the recipe
    lists the IMU devices in another order than config.gin (the grid orders them by name)."""
    parse_config(["recipes/quickstart.gin", str(MICRO_OVERRIDES)], TINY_EVALUATIONS)
    summary = pretrain(output_dir=str(tmp_path))
    evaluated = evaluate_run(tmp_path, random_init=True)["evaluations"]
    assert [entry["kind"] for entry in summary["evaluations"]] == ["linear_probe", "knn", "knn", "knn", "retrieval"]
    assert evaluated == summary["evaluations"]


def test_a_masker_that_cannot_mask_fails_before_the_run_directory_is_made(tmp_path):
    with pytest.raises(ValueError, match=r"modality 'video': .*batch\['face_parsing'\].*masker chosen in --gin_param"):
        train(tmp_path / "run", "video/RegionGuidedMasking.patch = 8", "video/RegionGuidedMasking.key = 'face_parsing'",
              "video/Modality.masker = @video/RegionGuidedMasking()")
    assert not (tmp_path / "run").exists()


def test_unreadable_media_is_skipped_counted_and_summarised_per_epoch(tmp_path, capsys, caplog):
    from mmmae.data.media.synthetic import write_moving_digits_folder

    root = tmp_path / "clips"
    write_moving_digits_folder(root, 8, frames=16, size=16)
    broken = sorted(root.glob("*/*.mp4"))[:2]
    for path in broken:
        path.write_bytes(path.read_bytes()[:1500])  # truncated
    bindings = [f"MEDIA_TRAIN = '{root}'", f"MEDIA_TEST = '{root}'", "FRAMES = 4", "STRIDE = 2", "FRAME_SIZE = 16",
                "MediaDataset.modalities = ['video']", "pretrain.steps = 4", "pretrain.log_every = 3"]
    parse_config(["recipes/videomae_folder.gin", str(MICRO_OVERRIDES)], bindings)
    with caplog.at_level("WARNING"):
        pretrain(output_dir=str(tmp_path / "run"))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # Records at steps 1, 3 and 4, each the total of its steps; 4 steps = 2 epochs, each counting both bad rows once.
    assert [r["step"] for r in records] == [1, 3, 4]
    assert sum(r["bad_samples"] for r in records) == 4
    assert all(path.name in caplog.text for path in broken)
    out = capsys.readouterr().out
    assert "epoch 0: 2 unreadable samples skipped" in out and "epoch 1: 2 unreadable samples skipped" in out


def test_media_resume_mid_epoch_is_bitwise_equal(tmp_path, monkeypatch):
    from mmmae.data.media.synthetic import write_moving_digits_folder

    root = tmp_path / "clips"
    write_moving_digits_folder(root, 8, frames=16, size=16)
    bindings = [f"MEDIA_TRAIN = '{root}'", f"MEDIA_TEST = '{root}'", "FRAMES = 4", "STRIDE = 2", "FRAME_SIZE = 16",
                "MediaDataset.modalities = ['video']", "pretrain.steps = 6", "pretrain.save_every = 3",
                "pretrain.log_every = 1"]

    def media_train(run_dir, resume=False):
        parse_config(["recipes/videomae_folder.gin", str(MICRO_OVERRIDES)], bindings)
        pretrain(output_dir=str(run_dir), resume=resume)

    media_train(tmp_path / "whole")
    run_until_interrupted(lambda: media_train(tmp_path / "resumed"), monkeypatch)
    assert latest_checkpoint(tmp_path / "resumed").name == "step_00000003"  # 2 steps an epoch: mid-epoch 1
    media_train(tmp_path / "resumed", resume=True)
    expected, resumed = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert losses(tmp_path / "resumed") == losses(tmp_path / "whole")


class Payload:
    """A pickle that, when loaded with weights_only=False, creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_unpickles_objects(uninterrupted, tmp_path, monkeypatch):
    run, marker = tmp_path / "run", tmp_path / "code_ran"
    train(run, "pretrain.log_every = 1", "pretrain.steps = 3")
    checkpoint = latest_checkpoint(run)
    assert not list(checkpoint.glob("custom_checkpoint_*.pkl"))  # the schedule is JSON in trainer_state.json
    assert "schedule" in json.loads((checkpoint / "trainer_state.json").read_text())
    planted = checkpoint / "custom_checkpoint_0.pkl"
    torch.save(Payload(marker), planted)  # planted in a copied run directory
    with pytest.raises(ValueError, match="custom_checkpoint_0.pkl, which mmmae never writes and will not load"):
        train(run, "pretrain.log_every = 1", "pretrain.steps = 3", resume=True)
    assert not marker.exists()
    planted.unlink()
    loads = []
    original_load = torch.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return original_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    (run / "model.safetensors").unlink()
    train(run, "pretrain.log_every = 1", "pretrain.steps = 3", resume=True)
    assert loads and all(loads), loads
    assert not marker.exists()

    torch.save(Payload(marker), checkpoint / "random_states_0.pkl")
    with pytest.raises(ValueError, match="refuses to load .*unpickling them can run code"):
        train(run, "pretrain.log_every = 1", "pretrain.steps = 3", resume=True)
    assert not marker.exists()


def test_resume_drops_a_torn_last_metrics_line_with_a_warning(uninterrupted, tmp_path, caplog):
    train(tmp_path, "pretrain.log_every = 1", "pretrain.steps = 3")
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 4, "loss": 1.0')  # the run was cut while writing its next line
    (tmp_path / "model.safetensors").unlink()
    train(tmp_path, "pretrain.log_every = 1", "pretrain.steps = 3", resume=True)
    assert "last line is torn" in caplog.text
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 3]


def test_a_damaged_metrics_line_before_the_last_is_refused_with_its_line(tmp_path):
    train(tmp_path, "pretrain.log_every = 1", "pretrain.steps = 3")
    metrics = tmp_path / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(RunDirError, match=r"metrics.jsonl, line 2, is not JSON"):
        train(tmp_path, "pretrain.log_every = 1", "pretrain.steps = 3", resume=True)


def test_a_full_disk_during_a_checkpoint_says_so_and_leaves_no_partial(tmp_path, monkeypatch):
    original = Accelerator.save_state

    def disk_fills_while_writing_step_6(self, output_dir, **kwargs):
        if "step_00000006" in str(output_dir):
            original(self, output_dir, **kwargs)  # some files written, then the disk is full
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5119296 vs 5119184")
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", disk_fills_while_writing_step_6)
    with pytest.raises(mmmae.checkpoint.CheckpointWriteError, match=r"no space left on .*checkpoints to write "
                       r"checkpoint step_00000006: it needs about \d+ MB") as failure:
        train(tmp_path, "pretrain.log_every = 1")
    assert "enforce fail" not in str(failure.value)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_00000003"]


def test_a_read_only_checkpoint_folder_is_named(tmp_path, monkeypatch):
    def read_only(self, output_dir, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", output_dir)

    monkeypatch.setattr(Accelerator, "save_state", read_only)
    with pytest.raises(mmmae.checkpoint.CheckpointWriteError, match="cannot write checkpoint step_00000003 into "
                       ".*checkpoints: read-only file system"):
        train(tmp_path, "pretrain.log_every = 1")
    assert not list((tmp_path / "checkpoints").iterdir())


def test_resume_with_more_steps_extends_a_finished_run(uninterrupted, tmp_path):
    """Only pretrain.steps differs: the run goes on from its last checkpoint, on the cosine schedule
    recomputed over the new total."""
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    summary = train(run, "pretrain.log_every = 1", "pretrain.steps = 8", resume=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9)) and summary["steps"] == 8
    assert [r["loss"] for r in records[:6]] == losses(uninterrupted)
    peak = 2 * records[0]["lr"]  # step 1 of a 2-step warmup runs at half the peak
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(optimizer, 2, 8, min_lr_rate=0.0)
    expected = []
    for _ in range(8):
        optimizer.step()
        schedule.step()
        expected.append(schedule.get_last_lr()[0])
    assert [r["lr"] for r in records[6:]] == pytest.approx(expected[6:], rel=1e-6)
    assert "pretrain.steps = 8" in (run / "config.gin").read_text()
