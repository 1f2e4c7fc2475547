"""The README's Python examples for pretrained weights run as written, offline."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_using_pretrained_weights_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MMMAE_CACHE", str(tmp_path / "cache"))
    blocks = re.findall(r"```python\n(.*?)```", _section("Using pretrained weights"), re.S)
    assert blocks, "the section has no Python example"
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), scope)  # noqa: S102
    assert scope["features"].shape == (4, 192)
    assert scope["tokens"].shape == (2, 512, 192)
