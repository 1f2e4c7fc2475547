"""Gin parsing for mmmae: search paths, registration, and errors that name the file and line.

Files are looked up as given, then under the package's gin folder, so both
`gin/recipes/quickstart.gin` (from a checkout) and `recipes/quickstart.gin` work anywhere;
`include` lines resolve the same way.
"""

import difflib
import functools
import importlib
import logging
import pkgutil
import re
import tokenize
from collections.abc import Sequence
from pathlib import Path

import gin

GIN_DIR = Path(__file__).parent / "gin"
OPERATIVE_CONFIG = "config.gin"


class ConfigError(ValueError):
    """A gin file or binding that cannot be used; the message names where it is."""


class _QuietMissingPaths(logging.Filter):
    """gin logs 'Path not found' for every search-path miss; those are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Path not found:")


@functools.cache
def register_configurables() -> None:
    """Import every module that defines a configurable, so any binding can resolve."""
    logging.getLogger().addFilter(_QuietMissingPaths())
    gin.add_config_file_search_path(str(GIN_DIR))
    gin.add_config_file_search_path(str(GIN_DIR.parent))
    import mmmae

    for module in pkgutil.walk_packages(mmmae.__path__, "mmmae."):
        importlib.import_module(module.name)


def _included_files(files: Sequence[str]) -> list[Path]:
    """The given files and, recursively, every file they include (resolved like gin does)."""
    seen: list[Path] = []
    pending = [Path(f) for f in files]
    while pending:
        path = resolve_gin_file(str(pending.pop()))
        if path is None or path in seen:
            continue
        seen.append(path)
        pending += [Path(m) for m in re.findall(r"^\s*include\s+['\"](.+?)['\"]", path.read_text(), re.M)]
    return seen


def _lines_in_parse_order(name: str, seen: frozenset = frozenset()) -> list[tuple[str, str]]:
    """(where, line) of a gin file with every include expanded in place, as gin reads them."""
    path = resolve_gin_file(name)
    if path is None or path in seen:
        return []
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if included := re.match(r"\s*include\s+['\"](.+?)['\"]", line):
            lines += _lines_in_parse_order(included.group(1), seen | {path})
        else:
            lines.append((f'file "{path}", line {number}', line))
    return lines


def resolve_gin_file(name: str) -> Path | None:
    for candidate in (Path(name), GIN_DIR / name, GIN_DIR.parent / name):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _macro_error(files: Sequence[str], params: Sequence[str]) -> str:
    """Every macro that is used but never defined, with 'file, line N: binding' for each use."""
    sources = [(f'In file "{path}", line', path.read_text().splitlines()) for path in _included_files(files)]
    sources.append(("In --gin_param", list(params)))
    lines = [(where, number, line) for where, text in sources for number, line in enumerate(text, start=1)]
    defined = {m.group(1) for _, _, line in lines if (m := re.match(r"\s*([A-Za-z_][\w.]*)\s*=", line))}
    report = []
    for where, number, line in lines:
        for macro in re.findall(r"%([A-Za-z_][\w.]*)", line):
            if macro not in defined:
                report.append(f"Macro %{macro} is used but never defined.\n  {where} {number}\n    {line.strip()}")
    return "\n".join(report)


_parsed: dict[str, list[str]] = {"files": [], "params": []}  # what the last parse_config read


def binding_location(pattern: str) -> str | None:
    """Where the last parse_config bound what the regex `pattern` matches at the start of a line:
    'file "F", line N: text' or '--gin_param: text' for the binding that wins (the last), or None."""
    sources = [source for name in _parsed["files"] for source in _lines_in_parse_order(name)]
    sources += [("--gin_param", param) for param in _parsed["params"]]
    found = [f"{where}: {line.strip()}" for where, line in sources if re.match(rf"\s*{pattern}", line)]
    return found[-1] if found else None


def parse_config(gin_files: Sequence[str], gin_params: Sequence[str] = ()) -> None:
    """Parse and finalize files then bindings (later ones win); ConfigError on any mistake."""
    register_configurables()
    gin.clear_config()
    _parsed.update(files=list(gin_files), params=list(gin_params))
    missing = [f for f in gin_files if resolve_gin_file(f) is None]
    if missing:
        raise ConfigError(f"gin file not found: {', '.join(missing)} (looked in the current folder and {GIN_DIR})")
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(gin_params), finalize_config=True)
    except (ValueError, SyntaxError, tokenize.TokenError, OSError) as error:
        undefined_macro = re.match(r"No bindings specified for '.+?/gin\.macro'", str(error))
        message = _macro_error(gin_files, gin_params) if undefined_macro else str(error)
        raise ConfigError(f"invalid gin config ({', '.join(gin_files)}):\n{message}") from None


def config_difference(saved: str, current: str, saved_name: str) -> str:
    """A unified diff between a saved operative config and the current one ('' if equal)."""
    diff = difflib.unified_diff(saved.splitlines(), current.splitlines(), saved_name, "this invocation", lineterm="")
    return "\n".join(diff)
