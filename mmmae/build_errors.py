"""A failure while gin builds the model, data and evaluations, or while their first sample is
tried: one ConfigError naming the binding at fault instead of a traceback through gin."""

import contextlib
import re
from collections.abc import Iterator

from mmmae.config import ConfigError, binding_error, with_bindings
from mmmae.gin_scan import split_gin_calls
from mmmae.types import BindingProblem


def build_error(error: Exception) -> ConfigError:
    """The ConfigError for `error`: gin's missing arguments as 'bind scope/Name.arg', a check's
    'Name.param = value: ...' at the line that bound it, else the message where the configurable is used."""
    message, calls = split_gin_calls(str(error))
    calls = [(name.rsplit(".", 1)[-1], scope) for name, scope in calls if not name.endswith("pretrain")]
    name, scope = calls[0] if calls else ("", "")
    prefix = f"{scope}/" if scope else ""
    if required := re.search(r"Required bindings for [`'](.+?)[`'] not provided in config: \[(.*?)\]", message):
        owner, arguments = required.group(1), [a.strip(" '\"") for a in required.group(2).split(",")]
        problem = (f"{owner} is built without {', '.join(arguments)}, which it requires: bind "
                   + " and ".join(f"{owner}.{argument}" for argument in arguments))
        return binding_error(problem, rf".*@{re.escape(owner)}\b")
    if (missing := re.search(r"No values supplied by Gin or caller for arguments: \[(.*?)\]", message)) and name:
        arguments = [a.strip(" '\"") for a in missing.group(1).split(",")]
        problem = (f"{prefix}{name} is built without {', '.join(arguments)}: bind "
                   + " and ".join(f"{prefix}{name}.{argument}" for argument in arguments))
        return binding_error(problem, rf".*@{re.escape(prefix + name)}\b")
    first = message.strip().splitlines()[0] if message.strip() else repr(error)
    if owner := re.match(r"(\w+)\.(\w+) = ", first):
        return binding_error(message.strip(), rf"({re.escape(scope)}/)?{owner.group(1)}\.{owner.group(2)}\s*=")
    if name:
        return binding_error(f"{prefix}{name}: {message.strip()}", rf".*@{re.escape(prefix + name)}\b")
    return ConfigError(f"invalid gin config:\n{message.strip()}")


@contextlib.contextmanager
def build_errors() -> Iterator[None]:
    """Turn a TypeError, ValueError, KeyError or FileNotFoundError raised inside, and gin's RuntimeError for a
    gin.REQUIRED argument left unbound, into build_error's ConfigError."""
    try:
        yield
    except ConfigError:
        raise
    except BindingProblem as error:
        raise with_bindings(error) from None
    except (TypeError, ValueError, KeyError, FileNotFoundError) as error:
        raise build_error(error) from None
    except RuntimeError as error:
        if "Required bindings for" not in str(error):
            raise
        raise build_error(error) from None
