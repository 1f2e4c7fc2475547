"""Reading gin text and gin's parsed bindings for mistakes gin itself does not report well:
a bracket that is never closed, and a scope that no configurable is ever called under."""

import io
import re
import tokenize

from gin import config as gin_config

CLOSING = {"(": ")", "[": "]", "{": "}"}


def unclosed_bracket(text: str) -> tuple[str, int] | None:
    """(bracket, line) of the first bracket in gin `text` still open at its end, or None.
    Python's tokenizer skips strings and comments as gin's parser does."""
    opened: list[tuple[str, int]] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in CLOSING:
                opened.append((token.string, token.start[0]))
            elif opened and token.string == CLOSING[opened[-1][0]]:
                opened.pop()
    except (tokenize.TokenError, SyntaxError):
        pass
    return opened[0] if opened else None


def _bound_and_referenced() -> tuple[list[tuple[str, str]], set[str]]:
    """(scope, selector) of every binding, and every scope component a reference (`@a/b/Name`)
    calls under. gin has no public listing of its bindings: this reads its private `_CONFIG`."""
    bindings = gin_config._CONFIG  # noqa: SLF001 (gin internals, isolated here)
    bound = [key for key in bindings if key[1] != "gin.macro"]
    referenced = {scope for reference in gin_config.iterate_references(bindings)
                  if reference.selector != "gin.macro" for scope in reference.scoped_selector.split("/")[:-1]}
    return bound, referenced


def scopes_in_text(text: str) -> set[str]:
    """Scope components the references of gin `text` call under (`@video/TubeMasking()` -> video)."""
    return {part for path in re.findall(r"@((?:\w+/)+)", text) for part in path.split("/") if part}


def unused_scopes(also_known: set[str] = frozenset()) -> list[tuple[str, str, str, list[str]]]:
    """(scope, selector, its first unknown part, scopes in use) for each binding under a scope that
    no reference calls under, nor `also_known` names: gin ignores it silently (a misspelt `vdieo/...`)."""
    bound, referenced = _bound_and_referenced()
    known = referenced | set(also_known)
    unused = []
    for scope, selector in bound:
        unknown = [part for part in scope.split("/") if part and part not in known]
        if unknown:
            unused.append((scope, selector, unknown[0], sorted(referenced)))
    return unused


# gin appends "In call to configurable 'Name' (<...>) in scope 'video'" to an exception's message
# for each configurable the exception passes through, innermost first.
_GIN_CALL = re.compile(r"^\s*In call to configurable '([\w.]+)' \(.*\)(?: in scope '([\w/]+)')?\s*$")


def split_gin_calls(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(message without gin's call lines, (configurable, scope) of each call, innermost first)."""
    kept, calls = [], []
    for line in text.splitlines():
        if call := _GIN_CALL.match(line):
            calls.append((call.group(1), call.group(2) or ""))
        else:
            kept.append(line)
    return "\n".join(kept), calls


def without_gin_calls(error: BaseException) -> str:
    """An exception's message without the call lines gin appended on its way out."""
    return split_gin_calls(str(error))[0]
