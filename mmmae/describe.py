"""`mmmae describe`: what a gin configurable takes (parameters, defaults, which are required),
its docstring, and where the package's gin files bind it."""

import difflib
import inspect
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gin
from gin import config_parser

from mmmae.config import GIN_DIR, ConfigError, register_configurables


@dataclass
class Binding:
    """One `scope/Name.parameter = value` statement of a gin file."""

    path: Path
    line: int
    scope: str
    parameter: str
    text: str

    def where(self) -> str:
        return f"{self.path.relative_to(GIN_DIR.parent)}:{self.line}"


def _registered() -> dict[str, object]:
    """Every registered configurable: full selector ('mmmae.TubeMasking') -> gin's record of it
    (fields name, module, wrapped, allowlist, denylist). gin has no public way to list them, so
    this reads its registry: the one place mmmae touches gin internals for describe."""
    register_configurables()
    return {selector: record for selector, record in gin.config._REGISTRY.items()
            if record.module != "gin"}


def _matches(selector: str, name: str) -> bool:
    """Does the full selector 'mmmae.TubeMasking' answer to `name` ('TubeMasking', 'mmmae.TubeMasking')?"""
    return selector == name or selector.endswith("." + name)


def lookup(name: str) -> tuple[str, object]:
    """(scope, record) for NAME ('TubeMasking', 'mmmae.TubeMasking', 'video/TubeMasking');
    ConfigError with the closest registered names when it is unknown or ambiguous."""
    scope, _, bare = name.rpartition("/")
    registry = _registered()
    found = [record for selector, record in registry.items() if _matches(selector, bare)]
    if len(found) > 1:
        raise ConfigError(f"{bare!r} is ambiguous: it names {', '.join(r.selector for r in found)}; "
                          "give the module too")
    if not found:
        names = sorted(registry) if "." in bare else sorted(record.name for record in registry.values())
        close = difflib.get_close_matches(bare, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            "`mmmae describe` with no name lists them all"
        raise ConfigError(f"no configurable named {bare!r}: {hint}")
    return scope, found[0]


def suggestion(gin_message: str) -> str:
    """'did you mean ...?' for gin's unknown-configurable and unknown-parameter errors ('' otherwise)."""
    if unknown := re.search(r"No configurable matching '([\w.]+)'", gin_message):
        try:
            lookup(unknown.group(1))
        except ConfigError as error:
            return error.args[0].partition(": ")[2] if "did you mean" in error.args[0] else ""
    if unknown := re.search(r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'", gin_message):
        _, record = lookup(unknown.group(1))
        close = difflib.get_close_matches(unknown.group(2), [p.name for p in parameters(record)], n=3, cutoff=0.6)
        return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            f"`mmmae describe {unknown.group(1)}` lists its parameters"
    return ""


def parameters(record) -> list[inspect.Parameter]:
    """The parameters gin may bind: the signature (of __init__ for a class), less *args,
    **kwargs and those the configurable's denylist (or allowlist) keeps from gin."""
    wrapped = record.wrapped
    signature = inspect.signature(wrapped.__init__ if inspect.isclass(wrapped) else wrapped)
    kept = []
    for parameter in signature.parameters.values():
        if parameter.name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if (record.denylist and parameter.name in record.denylist) or \
                (record.allowlist and parameter.name not in record.allowlist):
            continue
        kept.append(parameter)
    return kept


def _statements(path: Path) -> Iterator[config_parser.BindingStatement]:
    parser = config_parser.ConfigParser(io.StringIO(path.read_text()), gin.config.ParserDelegate(skip_unknown=True))
    return (statement for statement in parser if isinstance(statement, config_parser.BindingStatement))


def bindings(record, scope: str = "") -> list[Binding]:
    """Every binding of the configurable in the package's gin files, in file order; with `scope`,
    only those that apply under it (that scope, or none)."""
    wanted = set(scope.split("/")) - {""}
    found = []
    for path in sorted(GIN_DIR.rglob("*.gin")):
        for statement in _statements(path):
            if not statement.selector or not _matches(record.selector, statement.selector):
                continue
            if wanted and not wanted <= set(statement.scope.split("/")) and statement.scope:
                continue
            found.append(Binding(path, statement.location.line_num, statement.scope, statement.arg_name,
                                 statement.location.line_content.strip()))
    return found


def _default(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty or parameter.default is gin.REQUIRED:
        return "required"
    return f"default {parameter.default!r}"


def describe(name: str) -> str:
    """The text `mmmae describe NAME` prints."""
    scope, record = lookup(name)
    found = bindings(record, scope)
    if scope and not any(b.scope for b in found):
        used = sorted({b.scope for b in bindings(record) if b.scope})
        close = difflib.get_close_matches(scope, used, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(f'{c}/{record.name}') for c in close)}?" if close else \
            f"scopes that bind it: {', '.join(used) or 'none'}"
        raise ConfigError(f"no gin file binds {record.name} under the scope {scope!r}: {hint}")
    wrapped = record.wrapped
    kind = "class" if inspect.isclass(wrapped) else "function"
    lines = [f"{record.selector} ({kind} {wrapped.__module__}.{wrapped.__qualname__})", "", "parameters:"]
    for parameter in parameters(record):
        annotation = "" if parameter.annotation is inspect.Parameter.empty else \
            f": {inspect.formatannotation(parameter.annotation)}"
        lines.append(f"  {parameter.name}{annotation}  ({_default(parameter)})")
    lines += ["", inspect.getdoc(wrapped) or "(no docstring)", ""]
    under = f" under scope {scope!r}" if scope else ""
    if not found:
        lines.append(f"no gin file in {GIN_DIR} binds it{under}")
    else:
        lines.append(f"bound in {GIN_DIR}{under}:")
        lines += [f"  {b.where()}: {b.text}" for b in found]
    return "\n".join(lines)


def catalogue() -> str:
    """Every configurable, grouped by kind (its mmmae subpackage), with the first line of its docstring."""
    groups: dict[str, list[str]] = {}
    for record in sorted(_registered().values(), key=lambda r: (r.wrapped.__module__, r.name)):
        module = record.wrapped.__module__
        kind = module.split(".")[1] if module.startswith("mmmae.") else module
        summary = (inspect.getdoc(record.wrapped) or "").split("\n")[0]
        groups.setdefault(kind, []).append(f"  {record.name} ({module}){': ' + summary if summary else ''}")
    lines = []
    for kind, entries in groups.items():
        lines += [f"{kind}:", *entries]
    lines.append("`mmmae describe NAME` shows one (NAME, mmmae.NAME or scope/NAME)")
    return "\n".join(lines)
