"""Reading checkpoints for conversion: formats, wrappers, prefixes, pickles and key checks."""

import argparse
import json

import pytest
import torch
from safetensors.torch import save_file

from mmmae.zoo.convert.checkpoint_io import check_keys, read_source

WEIGHTS = {"encoder.blocks.0.attn.qkv.weight": torch.arange(6.0).view(3, 2), "mask_token": torch.ones(1, 1, 2)}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_safetensors_file_with_compiled_and_parallel_prefixes(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({f"module._orig_mod.{k}": v for k, v in WEIGHTS.items()}, str(path))
    state, config = read_source(path)
    assert same(state, WEIGHTS) and config == {}


def test_hugging_face_directory_gives_its_config_and_processor_statistics(tmp_path):
    save_file(WEIGHTS, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 2, "model_type": "videomae"}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
    state, config = read_source(tmp_path)
    assert same(state, WEIGHTS)
    assert config == {"hidden_size": 2, "model_type": "videomae", "image_mean": [0.5] * 3, "image_std": [0.25] * 3}


def test_sharded_directory(tmp_path):
    save_file({"mask_token": WEIGHTS["mask_token"]}, str(tmp_path / "a.safetensors"))
    save_file({"encoder.blocks.0.attn.qkv.weight": WEIGHTS["encoder.blocks.0.attn.qkv.weight"]},
              str(tmp_path / "b.safetensors"))
    index = {"weight_map": {"mask_token": "a.safetensors", "encoder.blocks.0.attn.qkv.weight": "b.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert same(read_source(tmp_path)[0], WEIGHTS)


@pytest.mark.parametrize("wrapper", ["model", "module", "model_state", "state_dict"])
def test_pickle_is_refused_without_the_flag_and_unwrapped_with_it(tmp_path, wrapper):
    path = tmp_path / "checkpoint.pth"
    torch.save({wrapper: WEIGHTS, "epoch": 3, "args": argparse.Namespace(lr=1.5e-4)}, path)
    with pytest.raises(ValueError, match=rf"{path}.*arbitrary code.*--allow_pickle"):
        read_source(path)
    state, config = read_source(path, allow_pickle=True)
    assert same(state, WEIGHTS) and config == {}


class Payload:
    def __reduce__(self):
        return (print, ("this ran while unpickling",))


def test_pickle_with_code_is_refused_even_when_allowed(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": WEIGHTS, "payload": Payload()}, path)
    with pytest.raises(ValueError, match=rf"cannot read {path}.*weights_only"):
        read_source(path, allow_pickle=True)
    assert "this ran" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth"])
def test_truncated_files_name_the_path(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(WEIGHTS, str(path))
    else:
        torch.save({"model": WEIGHTS}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"cannot read {path}"):
        read_source(path, allow_pickle=True)


def test_unknown_missing_and_tensorless_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        read_source(tmp_path / "nowhere.safetensors")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"w\.npz.*unknown checkpoint kind"):
        read_source(tmp_path / "w.npz")
    torch.save({"epoch": 1, "optimizer": {"lr": 0.1}}, tmp_path / "o.pth")
    with pytest.raises(ValueError, match=r"o\.pth: no state dict found; top-level keys \['epoch', 'optimizer'\]"):
        read_source(tmp_path / "o.pth", allow_pickle=True)


def test_check_keys_lists_missing_and_unexpected_sorted():
    check_keys(WEIGHTS, list(WEIGHTS), "layout")
    with pytest.raises(ValueError, match=r"my layout: .*missing keys \[a, b\]; unexpected keys \[mask_token\]"):
        check_keys(WEIGHTS, ["b", "a", "encoder.blocks.0.attn.qkv.weight"], "my layout")
