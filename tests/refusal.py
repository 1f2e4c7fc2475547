"""Run `mmmae.cli.main` on a mistake and return its one message (an exit with a message is status 1)."""

import pytest

from mmmae.cli import main


def refusal(argv: list[str], capsys) -> str:
    """The message main exits with for `argv`; fails if it exits 0 or prints a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = exit_.value.code
    assert isinstance(message, str), f"exit status {message!r}, expected a message (status 1)"
    printed = capsys.readouterr()
    assert "Traceback" not in message + printed.out + printed.err
    assert "In call to configurable" not in message, "gin's call trace is not for users"
    return message
