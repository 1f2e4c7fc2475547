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

from mmmae.gin_scan import CLOSING, scopes_in_text, unclosed_bracket, unused_scopes, without_gin_calls
from mmmae.types import BindingProblem

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
                at = located(f"--gin_param {number}", line.strip()) if where == "In --gin_param" else \
                    f"  {where} {number}\n    {line.strip()}"
                report.append(f"Macro %{macro} is used but never defined.\n{at}")
    return "\n".join(report)


_parsed: dict[str, list[str]] = {"files": [], "params": []}  # what the last parse_config read


def _binding_lines(pattern: str) -> list[tuple[str, str]]:
    """(where, text) of every line the last parse_config read that starts with the regex `pattern`,
    in parse order: where is 'file "F", line N' or '--gin_param N'."""
    sources = [source for name in _parsed["files"] for source in _lines_in_parse_order(name)]
    sources += [(f"--gin_param {index}", param) for index, param in enumerate(_parsed["params"], start=1)]
    return [(where, line.strip()) for where, line in sources if re.match(rf"\s*{pattern}", line)]


def binding_location(pattern: str) -> str | None:
    """Where the last parse_config bound what the regex `pattern` matches at the start of a line:
    'file "F", line N: text' or '--gin_param N: text' for the binding that wins (the last), or None.
    A binding to a macro (`= %VIDEO_PATCH`) is followed by where the macro got its value."""
    found = _binding_lines(pattern)
    if not found:
        return None
    where, text = found[-1]
    macro = re.fullmatch(r"[^=]+=\s*%(\w+)", text)
    value = binding_location(rf"{macro.group(1)}\s*=") if macro else None
    return f"{where}: {text}" + (f", where {value}" if value else "")


def located(where: str, text: str) -> str:
    """A location as the typo errors print it: 'In file "F", line N' over the line, or 'In --gin_param N: text'."""
    return f"  In {where}: {text}" if where.startswith("--gin_param") else f"  In {where}\n    {text}"


def with_bindings(problem: BindingProblem) -> ConfigError:
    """The problem, each of its bindings followed by where the last parse_config bound it:
    "... (masker chosen in file "F", line N: video/Modality.masker = ...)"; unbound ones are left out."""
    places = []
    for label, binding in problem.bindings:
        scope, _, name = binding.rpartition("/")
        if where := binding_location((rf"({re.escape(scope)}/)?" if scope else "") + rf"{re.escape(name)}\s*="):
            places.append(f" ({label} {where})")
    return ConfigError(f"{without_gin_calls(problem).rstrip()}{''.join(places)}")


def binding_error(problem: str, pattern: str) -> ConfigError:
    """A ConfigError stating `problem`, at the binding (regex `pattern`) that set the value if the config did."""
    found = _binding_lines(pattern)
    where = f"\n{located(*found[-1])}" if found else ""
    return ConfigError(f"invalid gin config:\n{problem}{where}")


def _unclosed_bracket_error(files: Sequence[str], params: Sequence[str]) -> str | None:
    """'bracket ... never closed' at the line where it opened, for the first file or param with one."""
    texts = [(f'file "{path}"', path.read_text()) for path in _included_files(files)]
    texts += [(f"--gin_param {index}", param) for index, param in enumerate(params, start=1)]
    for where, text in texts:
        if found := unclosed_bracket(text):
            bracket, number = found
            at = f"{where}, line {number}" if where.startswith("file") else where
            line = text.splitlines()[number - 1].strip() if at != where else text.strip()
            return (f"bracket '{bracket}' is opened but never closed: add the matching '{CLOSING[bracket]}' "
                    f"after its last item\n{located(at, line)}")
    return None


def _gin_text(error: Exception) -> str:
    """gin's message without its own location lines ('In bindings string line N' and what follows);
    gin's 'malformed node or string' for a bare word says what the word could be."""
    text = str(error)
    if token := re.search(r"Failed to parse token '(.*?)'", text):
        word = token.group(1)
        return (f"cannot read the value {word!r}: write a string in quotes ('{word}'), a reference @{word}() "
                f"or a macro %{word}")
    lines = text.splitlines()
    cut = next((i for i, line in enumerate(lines) if line.strip().startswith("In bindings string")), len(lines))
    return "\n".join(lines[:cut])


def _hinted(text: str) -> str:
    """gin's message, with 'did you mean ...?' for an unknown configurable or parameter."""
    from mmmae.describe import suggestion  # describe builds on this module

    hint = suggestion(text)
    return f"{text}\n{hint[0].upper()}{hint[1:]}" if hint else text


def _file_error(error: Exception) -> str:
    """gin's message for a mistake in a file, with the file's path when gin gave only its name."""
    token = re.search(r"Failed to parse token '.*?' \((.+?), line (\d+)\)", str(error))
    if not token:
        return _hinted(str(error))
    for name in _parsed["files"]:
        for where, line in _lines_in_parse_order(name):
            if where.endswith(f'{token.group(1)}", line {token.group(2)}'):
                return f"{_gin_text(error)}\n{located(where, line.strip())}"
    return _gin_text(error)


def _parse_params(params: Sequence[str]) -> None:
    """Parse each --gin_param alone, so that a mistake is reported with its index."""
    for index, param in enumerate(params, start=1):
        try:
            gin.parse_config(param)
        except (ValueError, SyntaxError, tokenize.TokenError) as error:
            if re.match(r"No bindings specified for '.+?/gin\.macro'", str(error)):
                raise
            raise ConfigError(f"invalid gin config (--gin_param {index}):\n{_hinted(_gin_text(error))}\n"
                              f"{located(f'--gin_param {index}', param.strip())}") from None


@functools.cache
def _package_scopes() -> set[str]:
    """Scopes the package's gin files call under: an overrides file may bind them for recipes that do not."""
    return {scope for path in GIN_DIR.rglob("*.gin") for scope in scopes_in_text(path.read_text())}


def _check_scopes() -> None:
    """Refuse bindings under a scope that no configurable of this config, nor of the package's gin
    files, is ever called under: gin would ignore them silently."""
    problems = []
    for scope, selector, wrong, in_use in unused_scopes(_package_scopes()):
        close = difflib.get_close_matches(wrong, in_use, n=3, cutoff=0.5)
        name = selector.rsplit(".", 1)[-1]
        guesses = " or ".join(repr(f"{scope.replace(wrong, c, 1)}/{name}") for c in close)
        lines = _binding_lines(rf"{re.escape(scope)}/([\w.]+\.)?{re.escape(name)}\.")
        problems.append(f"no configurable is ever called in scope {wrong!r}, so gin would ignore the bindings of "
                        f"'{scope}/{name}'" + (f"; did you mean {guesses}?" if close else "")
                        + f" (scopes in use: {', '.join(in_use)})" + "".join(f"\n{located(*line)}" for line in lines))
    if problems:
        raise ConfigError("invalid gin config:\n" + "\n".join(problems))


def parse_config(gin_files: Sequence[str], gin_params: Sequence[str] = ()) -> None:
    """Parse and finalize files then bindings (later ones win); ConfigError on any mistake, an
    unclosed bracket and a binding under a scope that nothing is called in included."""
    register_configurables()
    gin.clear_config()
    _parsed.update(files=list(gin_files), params=list(gin_params))
    missing = [f for f in gin_files if resolve_gin_file(f) is None]
    if missing:
        raise ConfigError(f"gin file not found: {', '.join(missing)} (looked in the current folder and {GIN_DIR})")
    if bracket := _unclosed_bracket_error(gin_files, gin_params):
        raise ConfigError(f"invalid gin config:\n{bracket}")
    try:
        gin.parse_config_files_and_bindings(list(gin_files), None, finalize_config=False)
        _parse_params(gin_params)
        gin.finalize()
    except ConfigError:
        raise
    except (ValueError, SyntaxError, tokenize.TokenError, OSError) as error:
        undefined_macro = re.match(r"No bindings specified for '.+?/gin\.macro'", str(error))
        message = _macro_error(gin_files, gin_params) if undefined_macro else _file_error(error)
        raise ConfigError(f"invalid gin config ({', '.join(gin_files)}):\n{message}") from None
    _check_scopes()


def config_difference(saved: str, current: str, saved_name: str) -> str:
    """A unified diff between a saved operative config and the current one ('' if equal)."""
    diff = difflib.unified_diff(saved.splitlines(), current.splitlines(), saved_name, "this invocation", lineterm="")
    return "\n".join(diff)
