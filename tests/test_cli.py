"""The command line end to end, in subprocesses as a user runs it."""

import subprocess
import sys

from mmmae.cli import format_summary
from tests.conftest import MICRO_GIN


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmmae", *args], capture_output=True, text=True, timeout=300)


def test_train_then_eval(tmp_path):
    run_dir = tmp_path / "run"
    trained = run("train", "--gin_file", MICRO_GIN, "--gin_param", "evaluations.probes = [@LinearProbe()]",
                  "--output_dir", str(run_dir))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"run directory: {run_dir}" in trained.stdout
    assert "linear probe video (label), pretrained: test accuracy" in trained.stdout
    assert "linear probe video (label), random_init: test accuracy" in trained.stdout
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "summary.json").is_file()

    evaluated = run("eval", "--run_dir", str(run_dir), "--random_init")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.count(": test accuracy") == 2
    assert "linear probe video (label), random_init: test accuracy" in evaluated.stdout


def test_summary_prints_every_probe_and_retrieval_direction_for_both_inits():
    probe = {"modality": "imu", "label": "label", "train_accuracy": 0.9, "test_accuracy": 0.8, "train_samples": 30,
             "test_samples": 12, "train_absent": 2, "test_absent": 1}
    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.5, "R@5": 1.0},
            "audio->video": {"R@1": 0.25, "R@5": 0.75}, "num_samples": 8, "absent": 0,
            "chance": {"R@1": 0.125, "R@5": 0.625}, "embedding": "contrastive_video_audio"}
    summary = {"run_dir": "r", "evaluations": [
        {"kind": "linear_probe", "pretrained": probe, "random_init": probe},
        {"kind": "retrieval", "pretrained": {"video-audio": pair}, "random_init": {"video-audio": pair}},
    ]}
    lines = format_summary(summary).splitlines()
    assert lines[1] == ("linear probe imu (label), pretrained: test accuracy 0.800 (train 0.900; 30 train, 12 test "
                        "samples, 3 without imu left out)")
    assert lines[2].startswith("linear probe imu (label), random_init: test accuracy 0.800")
    assert lines[3] == ("retrieval video->audio, pretrained: R@1 0.500 R@5 1.000 (chance R@1 0.125 R@5 0.625; "
                        "8 samples, 0 lacking one left out; embedding contrastive_video_audio)")
    assert lines[4].startswith("retrieval audio->video, pretrained: R@1 0.250 R@5 0.750")
    assert [line.split(":")[0] for line in lines[5:7]] == ["retrieval video->audio, random_init",
                                                           "retrieval audio->video, random_init"]
    assert lines[7].startswith("pretrained against random_init")  # then the side-by-side table: 1 + 4 rows
    assert [line.split()[:4] for line in lines[9:]] == [
        ["linear", "probe", "imu", "(label)"], ["retrieval", "video->audio", "R@1", "0.500"],
        ["retrieval", "video->audio", "R@5", "1.000"], ["retrieval", "audio->video", "R@1", "0.250"],
        ["retrieval", "audio->video", "R@5", "0.750"]]


def test_bad_gin_fails_with_the_binding_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text(f"include '{MICRO_GIN}'\npretrain.stepz = 4\n")
    result = run("train", "--gin_file", str(bad), "--output_dir", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "doesn't have a parameter named 'stepz'" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_then_zoo_list_download_verify(tmp_path):
    import json
    import os
    from pathlib import Path

    from mmmae.zoo.pretrained import build_model, save_pretrained
    from mmmae.zoo.registry import sha256

    config = Path(MICRO_GIN).read_text()
    source = save_pretrained(build_model(config), tmp_path / "full", config, {"metrics": {"probe": 0.5}})
    exported = run("export", "--src", str(source), "--dst", str(tmp_path / "zoo" / "micro"), "--encoder_only",
                   "--dtype", "float16", "--description", "a micro model")
    assert exported.returncode == 0, exported.stderr[-3000:]
    metadata = json.loads((tmp_path / "zoo" / "micro" / "mmmae.json").read_text())
    assert metadata["encoder_only"] and metadata["stored_dtype"] == "float16"
    assert metadata["description"] == "a micro model" and metadata["metrics"] == {"probe": 0.5}

    folder = tmp_path / "zoo" / "micro"
    files = {p.name: sha256(p) for p in folder.iterdir()}
    (tmp_path / "zoo" / "registry.json").write_text(json.dumps({"micro": {
        "description": "a micro model", "source": "micro", "files": files, "recipe": "micro.gin",
        "metrics": {"probe": 0.5}}}))
    env = {**os.environ, "MMMAE_ZOO_REGISTRY": str(tmp_path / "zoo" / "registry.json"),
           "MMMAE_CACHE": str(tmp_path / "cache")}

    def zoo(*args):
        return subprocess.run([sys.executable, "-m", "mmmae", "zoo", *args], capture_output=True, text=True,
                              timeout=300, env=env)

    listed = zoo("list")
    assert listed.returncode == 0 and "micro: a micro model (recipe micro.gin; not downloaded)" in listed.stdout
    assert "probe: 0.5" in listed.stdout
    downloaded = zoo("download", "micro")
    folder = Path(downloaded.stdout.strip())
    assert downloaded.returncode == 0 and folder.parent == tmp_path / "cache" / "zoo" / "micro"
    verified = zoo("verify")
    assert verified.returncode == 0 and "micro: " in verified.stdout and "4 files match" in verified.stdout
    (folder / "model.safetensors").write_bytes(b"truncated")
    tampered = zoo("verify", "micro")
    truncated = folder / "model.safetensors"
    assert tampered.returncode == 1
    assert f"{truncated} sha256 {sha256(truncated)} != registered {files['model.safetensors']}" in tampered.stdout
    unknown = zoo("download", "absent")
    assert unknown.returncode == 1 and "no model 'absent' in the zoo" in unknown.stderr


def test_convert_an_hf_videomae_folder_and_refuse_a_pickle_without_the_flag(tmp_path):
    import torch
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    config = VideoMAEConfig(image_size=16, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, decoder_hidden_size=16,
                            decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32)
    VideoMAEForPreTraining(config).save_pretrained(tmp_path / "hf")
    converted = run("convert", "--from", "hf-videomae", "--src", str(tmp_path / "hf"), "--dst", str(tmp_path / "mm"))
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert converted.stdout.strip() == str(tmp_path / "mm")
    assert {p.name for p in (tmp_path / "mm").iterdir()} == {"model.safetensors", "config.gin", "mmmae.json",
                                                              "README.md"}
    torch.save({"model": {"encoder.norm.weight": torch.ones(2)}}, tmp_path / "ckpt.pth")
    refused = run("convert", "--from", "videomae", "--src", str(tmp_path / "ckpt.pth"), "--dst", str(tmp_path / "x"))
    assert (refused.returncode == 1 and "--allow_pickle" in refused.stderr
            and str(tmp_path / "ckpt.pth") in refused.stderr)
    assert not (tmp_path / "x").exists()
    bad_option = run("convert", "--from", "videomae", "--src", str(tmp_path / "ckpt.pth"), "--dst", str(tmp_path / "x"),
                     "--allow_pickle", "--option", "heads")
    assert bad_option.returncode == 1 and "'heads' is not KEY=VALUE" in bad_option.stderr


def test_eval_a_zoo_model_by_name_then_extract_its_features(tmp_path):
    import json
    import os

    env = {**os.environ, "MMMAE_CACHE": str(tmp_path / "cache")}
    env.pop("MMMAE_ZOO_REGISTRY", None)
    small = ["--gin_param", "probe_train/MovingDigits.num_samples = 64",
             "--gin_param", "probe_test/MovingDigits.num_samples = 32"]
    evaluated = subprocess.run([sys.executable, "-m", "mmmae", "eval", "--model", "tiny-video-movingdigits", *small],
                               capture_output=True, text=True, timeout=300, env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "linear probe video (label), pretrained: test accuracy" in evaluated.stdout
    assert [p.name for p in (tmp_path / "cache" / "zoo" / "tiny-video-movingdigits").glob("*/model.safetensors")] \
        == ["model.safetensors"]

    output = tmp_path / "features"
    extracted = subprocess.run(
        [sys.executable, "-m", "mmmae", "extract", "--model", "tiny-video-movingdigits", "--output_dir", str(output),
         "--format", "npy", "--gin_param", "extract_features.dataset = @probe_test/MovingDigits()", *small],
        capture_output=True, text=True, timeout=300, env=env)
    assert extracted.returncode == 0, extracted.stderr[-3000:]
    assert "video features (pooled, 192 per sample) of 32 samples" in extracted.stdout
    assert json.loads((output / "index.json").read_text())["num_samples"] == 32
    again = subprocess.run(
        [sys.executable, "-m", "mmmae", "extract", "--model", "tiny-video-movingdigits", "--output_dir", str(output),
         "--gin_param", "extract_features.dataset = @probe_test/MovingDigits()", *small],
        capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 1 and "overwrite" in again.stderr and "Traceback" not in again.stderr


def test_bench_step_refuses_zero_steps_naming_the_flag():
    done = subprocess.run([sys.executable, "-m", "mmmae", "bench", "step", "--steps", "0"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--steps: must be at least 1, got 0" in done.stderr


def test_validate_a_recipe_reports_every_row_training_cannot_use(tmp_path):
    """The recipe's own datasets, read as training reads them: a 30 fps clip among 8 fps ones, an IMU
    log with 3 of 6 channels or a 0.4 s gap, a 1-frame video, a PNG named .mp4 and unreadable captions."""
    from mmmae.data.media.synthetic import write_moving_digits_folder
    from tests.data.media.test_validation_report import broken_folder

    good = tmp_path / "good"
    write_moving_digits_folder(good, 4, frames=16, size=16)
    named = broken_folder(good, tmp_path / "train")
    result = run("validate", "--gin_file", "recipes/quickstart_media.gin",
                 "--gin_param", f"MEDIA_TRAIN = '{tmp_path / 'train'}'", "--gin_param", f"MEDIA_TEST = '{good}'")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    for kind, path in named.items():
        assert any(line.startswith("pretrain.dataset row ") and f" {path}: " in line for line in lines), kind
    assert "pretrain.dataset: 11 rows, 4 readable, 7 with problems (7 in all)" in lines
    assert "LinearProbe.train_data: the same rows and shapes as pretrain.dataset (checked there)" in lines
    assert "LinearProbe.test_data: 4 rows, 4 readable, 0 with problems (0 in all)" in lines
    assert not any("unexpected error" in line for line in lines)


def test_validate_refuses_a_recipe_without_media_in_one_line(tmp_path):
    result = run("validate", "--gin_file", MICRO_GIN)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mmmae validate: the recipe reads no media" in result.stderr


def test_a_bad_manifest_stops_training_with_one_message_naming_file_and_line(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text('{"video": "a.mp4", "label": "cat"}\n{"video": "b.mp4", "label": [1, 2]}\n')
    bindings = [f"MEDIA_TRAIN = '{tmp_path}'", f"MEDIA_TEST = '{tmp_path}'",
                "train/MediaDataset.source = @train/manifest", f"train/manifest.path = '{manifest}'"]
    flags = [word for binding in bindings for word in ("--gin_param", binding)]
    result = run("train", "--gin_file", "recipes/videomae_folder.gin", *flags, "--output_dir", str(tmp_path / "run"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"mmmae train: {manifest}:2: label [1, 2] is not one class")
