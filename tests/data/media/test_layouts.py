"""Tests for the dataset layouts: real small files in each layout under tmp_path."""

import json
import os

import datasets
import gin
import pytest

from mmmae.data.media.layouts import (
    COLUMNS,
    LayoutError,
    class_folder,
    kinetics_csv,
    layout_problems,
    manifest,
    missing_files,
    ssv2_json,
    videomae_list,
)


def touch(path, data: bytes = b"\x00media"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_class_folder_rows_siblings_and_labels(tmp_path):
    for name in ("Bowling/b1.mp4", "Archery/a2.AVI", "Archery/a1.mkv", "Archery/a1.wav", "Archery/a1.csv",
                 "Archery/a1.npz", "Bowling/b1.npz", "Bowling/notes.json", "stray.mp4", ".cache/x.mp4"):
        touch(tmp_path / name)
    write(tmp_path / "Archery/a1.txt", "an archer shoots\n")
    data = class_folder(tmp_path)
    assert list(data.column_names) == list(COLUMNS)
    assert data.features["label"].names == ["Archery", "Bowling"]
    rows = list(data)
    videos = [os.path.relpath(r["video"], tmp_path) for r in rows]
    assert videos == ["Archery/a1.mkv", "Archery/a2.AVI", "Bowling/b1.mp4"]
    assert [r["label"] for r in rows] == [0, 0, 1]
    first = rows[0]
    assert first["audio"] == str(tmp_path / "Archery/a1.wav") and os.path.isabs(first["audio"])
    assert first["imu"] == str(tmp_path / "Archery/a1.csv")  # csv preferred over npz
    assert first["caption"] == "an archer shoots"
    assert rows[1]["audio"] is rows[1]["imu"] is rows[1]["caption"] is None
    assert rows[2]["imu"] == str(tmp_path / "Bowling/b1.npz")
    assert all(r["start"] is None and r["end"] is None for r in rows)
    assert missing_files(data) == []
    with_track = list(class_folder(tmp_path, audio_in_video=True))
    assert with_track[0]["audio"] == first["audio"]  # a wav still wins
    assert [r["audio"] for r in with_track[1:]] == [r["video"] for r in rows[1:]]


def test_class_folder_split_file_keeps_missing_clips(tmp_path):
    root = tmp_path / "ucf"
    touch(root / "Archery/v_a_g01.avi")
    touch(root / "Bowling/v_b_g01.avi")
    split = write(tmp_path / "trainlist01.txt", "Bowling/v_b_g01.avi 2\n\nArchery/v_gone.avi 1\n")
    data = class_folder(root, split_file=split)
    assert [os.path.basename(v) for v in data["video"]] == ["v_b_g01.avi", "v_gone.avi"]  # the file's order
    assert list(data["label"]) == [1, 0]
    assert missing_files(data) == [str(root / "Archery/v_gone.avi")]
    testlist = write(tmp_path / "testlist01.txt", "Archery/v_a_g01.avi\n")
    assert list(class_folder(root, split_file=testlist)["label"]) == [0]


def test_class_folder_bad_split_line(tmp_path):
    touch(tmp_path / "ucf/Archery/a.avi")
    split = write(tmp_path / "trainlist01.txt", "Archery/a.avi 1\nArchery a.avi\n")
    with pytest.raises(ValueError, match=r"trainlist01\.txt:2:"):
        class_folder(tmp_path / "ucf", split_file=split)
    with pytest.raises(LayoutError, match=r"class_folder\.root .*nowhere is not a directory"):
        class_folder(tmp_path / "nowhere")


def test_class_folder_unreadable_captions_leave_the_clip_without_one_and_are_reported(tmp_path, caplog):
    for name in ("A/latin.mp4", "A/ok.mp4", "B/shelf.mp4"):
        touch(tmp_path / name)
    (tmp_path / "A/latin.txt").write_bytes("un caf\xe9".encode("latin-1"))
    write(tmp_path / "A/ok.txt", "\ufefffine\n")  # a BOM is not part of the caption
    (tmp_path / "B/shelf.txt").mkdir()
    with layout_problems() as problems:
        data = class_folder(tmp_path)
    assert list(data["caption"]) == [None, "fine", None]
    assert [(p["row"], p["column"], p["path"]) for p in problems] == [
        (0, "caption", str(tmp_path / "A/latin.txt")), (2, "caption", str(tmp_path / "B/shelf.txt"))]
    assert problems[0]["reason"] == "not UTF-8 text (byte 0xe9 at offset 6); save the file as UTF-8"
    assert "directory" in problems[1]["reason"].lower()
    warned = [r.getMessage() for r in caplog.records if r.name == "mmmae.data.media.layouts"]
    assert len(warned) == 2 and all("used without a caption" in m for m in warned)
    assert str(tmp_path / "A/latin.txt") in warned[0]


KINETICS = """label,youtube_id,time_start,time_end,split
abseiling,aaa,14,24,train
air drumming,bbb,0,10,train
abseiling,ccc,5,15,train
zumba,ddd,30,40,train
"""


def test_kinetics_csv_candidates_and_labels(tmp_path):
    root = tmp_path / "k400"
    touch(root / "abseiling/aaa_000014_000024.mp4")
    touch(root / "air_drumming/bbb_000000_000010.mp4")  # spaces written as underscores
    touch(root / "train/abseiling/ccc_000005_000015.mp4")  # under the split folder
    data = kinetics_csv(write(tmp_path / "train.csv", KINETICS), root)
    assert data.features["label"].names == ["abseiling", "air drumming", "zumba"]
    assert list(data["label"]) == [0, 1, 0, 2]
    assert [os.path.relpath(v, root) for v in data["video"]] == [
        "abseiling/aaa_000014_000024.mp4", "air_drumming/bbb_000000_000010.mp4",
        "train/abseiling/ccc_000005_000015.mp4", "zumba/ddd_000030_000040.mp4"]
    assert missing_files(data) == [str(root / "zumba/ddd_000030_000040.mp4")]
    assert set(data["start"]) == set(data["end"]) == {None}


def test_kinetics_csv_test_split_without_labels(tmp_path):
    touch(tmp_path / "k/test/eee_000001_000011.mp4")
    csv_path = write(tmp_path / "test.csv", "youtube_id,time_start,time_end,split\neee,1,11,test\n")
    data = kinetics_csv(csv_path, tmp_path / "k")
    assert data[0]["video"] == str(tmp_path / "k/test/eee_000001_000011.mp4")
    assert data[0]["label"] == -1 and data.features["label"] == datasets.Value("int64")


@pytest.mark.parametrize(("text", "where"), [
    ("label,youtube_id,time_start\nx,a,1\n", r"bad\.csv:1: missing column"),
    ("label,youtube_id,time_start,time_end\nx,a,1,2\nx,b,one,2\n", r"bad\.csv:3: time_start"),
    ("label,youtube_id,time_start,time_end\nx,a,1,2\nx,b,1\n", r"bad\.csv:3: expected 4 fields"),
])
def test_kinetics_csv_bad_input(tmp_path, text, where):
    with pytest.raises(ValueError, match=where):
        kinetics_csv(write(tmp_path / "bad.csv", text), tmp_path)


def test_videomae_list(tmp_path):
    lists = tmp_path / "lists"
    write(lists / "train.csv", "clips/a.mp4 0\n/abs/b.mp4 2\nclips/with space.mp4 1\n")
    data = videomae_list(lists / "train.csv")
    assert list(data["video"]) == [str(lists / "clips/a.mp4"), "/abs/b.mp4", str(lists / "clips/with space.mp4")]
    assert list(data["label"]) == [0, 2, 1]
    assert data.features["label"].num_classes == 3
    elsewhere = videomae_list(lists / "train.csv", root=tmp_path / "videos")
    assert elsewhere[0]["video"] == str(tmp_path / "videos/clips/a.mp4")
    write(lists / "bad.csv", "a.mp4 0\nb.mp4 cat\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2:"):
        videomae_list(lists / "bad.csv")


SSV2_LABELS = {"Putting something on something": "1", "Pushing something from left to right": "0"}
SSV2_TRAIN = [
    {"id": "78687", "label": "putting a pen on a table", "template": "Putting [something] on [something]",
     "placeholders": ["a pen", "a table"]},
    {"id": "42326", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
     "placeholders": ["a cup"]},
]


def test_ssv2_json(tmp_path):
    labels = write(tmp_path / "labels.json", json.dumps(SSV2_LABELS))
    touch(tmp_path / "videos/78687.webm")
    data = ssv2_json(write(tmp_path / "train.json", json.dumps(SSV2_TRAIN)), labels, tmp_path / "videos")
    assert data.features["label"].names == ["Pushing something from left to right", "Putting something on something"]
    assert list(data["label"]) == [1, 0]
    assert list(data["caption"]) == ["putting a pen on a table", "pushing a cup from left to right"]
    assert data[0]["video"] == str(tmp_path / "videos/78687.webm")
    assert missing_files(data) == [str(tmp_path / "videos/42326.webm")]
    test = ssv2_json(write(tmp_path / "test.json", json.dumps([{"id": "1"}])), labels, tmp_path / "videos")
    assert test[0]["label"] == -1 and test[0]["caption"] is None


def test_ssv2_json_bad_input(tmp_path):
    labels = write(tmp_path / "labels.json", json.dumps(SSV2_LABELS))
    unknown = [dict(SSV2_TRAIN[0]), {"id": "2", "template": "Tearing [something]"}]
    with pytest.raises(ValueError, match=r"train\.json:entry 1: template 'Tearing something'"):
        ssv2_json(write(tmp_path / "train.json", json.dumps(unknown)), labels, tmp_path)
    with pytest.raises(ValueError, match=r"broken\.json:3: invalid JSON"):
        ssv2_json(write(tmp_path / "broken.json", '[\n {"id": "1"},\n {"id": ]\n]\n'), labels, tmp_path)
    with pytest.raises(ValueError, match=r"noid\.json:entry 0: missing 'id'"):
        ssv2_json(write(tmp_path / "noid.json", json.dumps([{"label": "x"}])), labels, tmp_path)


def test_manifest_csv(tmp_path):
    touch(tmp_path / "data/clips/a.mp4")
    touch(tmp_path / "data/clips/a.wav")
    path = write(tmp_path / "data/train.csv",
                 "video,audio,imu,caption,label,start,end\n"
                 "clips/a.mp4,clips/a.wav,,a dog barks,dog,1.5,3.5\n"
                 "clips/b.mp4,,imu/b.npz,,cat,,\n"
                 "/abs/c.mp4,,,\"a cat, sleeping\",,0,2\n")
    data = manifest(path)
    assert data.features["label"].names == ["cat", "dog"]
    rows = list(data)
    assert rows[0] == {"video": str(tmp_path / "data/clips/a.mp4"), "audio": str(tmp_path / "data/clips/a.wav"),
                       "imu": None, "caption": "a dog barks", "label": 1, "start": 1.5, "end": 3.5}
    assert rows[1]["imu"] == str(tmp_path / "data/imu/b.npz") and rows[1]["start"] is None
    assert rows[2]["video"] == "/abs/c.mp4" and rows[2]["caption"] == "a cat, sleeping" and rows[2]["label"] == -1
    assert missing_files(data) == [str(tmp_path / "data/clips/b.mp4"), str(tmp_path / "data/imu/b.npz"), "/abs/c.mp4"]


def test_manifest_jsonl_labels(tmp_path):
    rows = [{"video": "seven/clip_0.mp4", "audio": "seven/clip_0.mp4", "imu": "seven/clip_0.csv",
             "caption": "a seven moves up", "label": "seven"},
            {"video": "one/clip_1.mp4", "label": "one"}]
    path = write(tmp_path / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = manifest(path)
    assert data[0]["audio"] == data[0]["video"] == str(tmp_path / "seven/clip_0.mp4")
    assert list(data["label"]) == [1, 0] and data.features["label"].names == ["one", "seven"]
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    fixed = manifest(path, classes=words)  # a fixed class list: train and validation agree
    assert list(fixed["label"]) == [7, 1] and fixed.features["label"].names == words
    indices = write(tmp_path / "ints.jsonl", '{"video": "a.mp4", "label": 3}\n{"video": "b.mp4", "label": -1}\n')
    data = manifest(indices)
    assert list(data["label"]) == [3, -1] and data.features["label"].num_classes == 4
    unlabelled = manifest(write(tmp_path / "u.jsonl", '{"imu": "a.csv", "start": 2, "end": 4.5}\n'))
    assert unlabelled.features["label"] == datasets.Value("int64")
    assert unlabelled[0]["label"] == -1 and (unlabelled[0]["start"], unlabelled[0]["end"]) == (2.0, 4.5)


@pytest.mark.parametrize(("name", "text", "where"), [
    ("m.csv", "video,lable\na.mp4,x\n", r"m\.csv:1: unknown column\(s\) \['lable'\]"),
    ("m.csv", "video,label\na.mp4,x\nb.mp4\n", r"m\.csv:3: expected 2 fields"),
    ("m.csv", "video,start,end\na.mp4,1,2\nb.mp4,3,x\n", r"m\.csv:3: end='x'"),
    ("m.csv", "video,start,end\na.mp4,3,2\n", r"m\.csv:2: start 3.0 is not before end 2.0"),
    ("m.csv", "caption,label\nhello,x\n", r"m\.csv:2: no media"),
    ("m.jsonl", '{"video": "a.mp4"}\n\n{"video": "b.mp4",\n', r"m\.jsonl:3: invalid JSON"),
    ("m.jsonl", '{"video": "a.mp4", "fps": 30}\n', r"m\.jsonl:1: unknown column"),
    ("m.jsonl", '["a.mp4"]\n', r"m\.jsonl:1: expected a JSON object"),
    ("m.jsonl", '{"video": 3}\n', r"m\.jsonl:1: a media path must be a string"),
])
def test_manifest_bad_input(tmp_path, name, text, where):
    with pytest.raises(ValueError, match=where):
        manifest(write(tmp_path / name, text))


def test_manifest_label_outside_classes(tmp_path):
    path = write(tmp_path / "m.jsonl", '{"video": "a.mp4", "label": "cat"}\n{"video": "b.mp4", "label": "emu"}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: label 'emu' is not one of the 2 classes"):
        manifest(path, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="must be .csv or .jsonl"):
        manifest(write(tmp_path / "m.txt", "a.mp4\n"))


@pytest.mark.parametrize(("name", "text", "where"), [
    ("m.jsonl", '{"video": "a.mp4", "label": "cat"}\n{"video": "b.mp4", "label": [1, 2]}\n',
     r"m\.jsonl:2: label \[1, 2\] is not one class"),
    ("m.csv", 'video,label\na.mp4,cat\nb.mp4,"[1, 2]"\n', r"m\.csv:3: label '\[1, 2\]' is not one class"),
    ("m.jsonl", '{"video": "a.mp4", "label": {"cat": 1}}\n', r"m\.jsonl:1: label \{'cat': 1\} is not one class"),
    ("m.jsonl", '{"video": "a.mp4", "label": true}\n', r"m\.jsonl:1: label True is not one class"),
    ("m.jsonl", '{"video": "a.mp4", "label": 1.5}\n', r"m\.jsonl:1: label 1.5 is not one class"),
    ("m.jsonl", '{"video": "a.mp4", "caption": ["a", "b"]}\n', r"m\.jsonl:1: caption \['a', 'b'\] must be one"),
], ids=["json_list", "csv_list", "object", "bool", "fraction", "caption_list"])
def test_manifest_label_must_be_one_class(tmp_path, name, text, where):
    with pytest.raises(LayoutError, match=where):
        manifest(write(tmp_path / name, text))


def test_manifest_whole_number_labels_are_class_indices(tmp_path):
    data = manifest(write(tmp_path / "m.jsonl", '{"video": "a.mp4", "label": 2.0}\n{"video": "b.mp4", "label": 0}\n'))
    assert list(data["label"]) == [2, 0] and data.features["label"].num_classes == 3


def test_layout_files_that_cannot_be_read_as_text_name_the_file_and_line(tmp_path):
    latin = tmp_path / "m.csv"
    latin.write_bytes("video,caption\na.mp4,ok\nb.mp4,caf\xe9\n".encode("latin-1"))
    with pytest.raises(LayoutError, match=r"m\.csv:3: not UTF-8 text \(byte 0xe9 at offset 32\)"):
        manifest(latin)
    (tmp_path / "list.txt").write_bytes(b"a.mp4 0\n\xff.mp4 1\n")
    with pytest.raises(LayoutError, match=r"list\.txt:2: not UTF-8 text"):
        videomae_list(tmp_path / "list.txt")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(LayoutError, match=r"dir\.jsonl: cannot read: Is a directory"):
        manifest(tmp_path / "dir.jsonl")
    with pytest.raises(LayoutError, match=r"gone\.jsonl: cannot read: No such file"):
        manifest(tmp_path / "gone.jsonl")


@gin.configurable("layouts_test_consumer")
def consumer(source=gin.REQUIRED):
    return source


def test_layouts_are_gin_configurable(tmp_path):
    touch(tmp_path / "ucf/Archery/a.avi")
    write(tmp_path / "m.jsonl", '{"video": "x.mp4"}\n')
    gin.parse_config([
        "layouts_test_consumer.source = @class_folder()",
        f"class_folder.root = '{tmp_path / 'ucf'}'",
        f"mmmae.manifest.path = '{tmp_path / 'm.jsonl'}'",
    ])
    assert consumer()[0]["video"] == str(tmp_path / "ucf/Archery/a.avi")
    assert manifest()[0]["video"] == str(tmp_path / "x.mp4")


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory):
    """Eight real MovingDigits mp4 clips (with audio) in a class folder, and their manifest."""
    from mmmae.data.media.synthetic import write_moving_digits_folder

    root = tmp_path_factory.mktemp("demo")
    write_moving_digits_folder(root, 8, frames=16, size=16)
    return root, sorted(root.glob("*/*.mp4"))


def relayout(kind: str, root, clips, tmp_path) -> list[str]:
    """Put the demo clips into layout `kind` under tmp_path; the gin bindings that read it for training."""
    import shutil

    if kind == "manifest":
        return ["train/MediaDataset.source = @train/manifest", f"train/manifest.path = '{root / 'manifest.jsonl'}'"]
    if kind == "videomae_list":
        write(tmp_path / "train.csv", "".join(f"{c.relative_to(root)} {i % 3}\n" for i, c in enumerate(clips)))
        return ["train/MediaDataset.source = @train/videomae_list",
                f"train/videomae_list.list_path = '{tmp_path}/train.csv'", f"train/videomae_list.root = '{root}'"]
    if kind == "kinetics_csv":
        lines = ["label,youtube_id,time_start,time_end,split"]
        for i, clip in enumerate(clips):
            label = clip.parent.name.replace("_", " ")
            target = tmp_path / "k400" / clip.parent.name / f"vid{i}_000000_000002.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, target)
            lines.append(f"{label},vid{i},0,2,train")
        write(tmp_path / "train.csv", "\n".join(lines) + "\n")
        return ["train/MediaDataset.source = @train/kinetics_csv",
                f"train/kinetics_csv.csv_path = '{tmp_path}/train.csv'",
                f"train/kinetics_csv.root = '{tmp_path / 'k400'}'"]
    entries = []
    for i, clip in enumerate(clips):
        shutil.copy(clip, tmp_path / f"{i}.mp4")
        entries.append({"id": str(i), "label": f"moving {clip.parent.name}", "template": "Moving [something]",
                        "placeholders": [clip.parent.name]})
    write(tmp_path / "train.json", json.dumps(entries))
    write(tmp_path / "labels.json", json.dumps({"Moving something": "0"}))
    return ["train/MediaDataset.source = @train/ssv2_json", f"train/ssv2_json.json_path = '{tmp_path}/train.json'",
            f"train/ssv2_json.labels_path = '{tmp_path}/labels.json'", f"train/ssv2_json.root = '{tmp_path}'",
            "train/ssv2_json.extension = '.mp4'"]


@pytest.mark.parametrize("kind", ["manifest", "videomae_list", "kinetics_csv", "ssv2_json"])
def test_every_layout_trains_a_few_steps(kind, demo_clips, tmp_path):
    from mmmae.config import parse_config
    from mmmae.train import pretrain
    from tests.test_train import MICRO_OVERRIDES

    root, clips = demo_clips
    bindings = [f"MEDIA_TRAIN = '{root}'", f"MEDIA_TEST = '{root}'", "FRAMES = 4", "STRIDE = 2", "FRAME_SIZE = 16",
                "MediaDataset.modalities = ['video']", *relayout(kind, root, clips, tmp_path)]
    parse_config(["recipes/videomae_folder.gin", str(MICRO_OVERRIDES)], bindings)
    summary = pretrain(output_dir=str(tmp_path / "run"))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all(r["bad_samples"] == 0 for r in records)
    assert summary["steps"] == 2
