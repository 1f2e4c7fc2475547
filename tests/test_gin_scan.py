"""Reading gin text and bindings: unclosed brackets, scopes, gin's call lines."""

from mmmae.config import parse_config
from mmmae.gin_scan import scopes_in_text, split_gin_calls, unclosed_bracket, unused_scopes
from tests.conftest import MICRO_GIN


def test_the_outermost_unclosed_bracket_and_its_line():
    assert unclosed_bracket("a = [\n  {'b': (1,\n") == ("[", 1)
    assert unclosed_bracket("a = [1, 2]\nb = {'x': 1}\n") is None


def test_brackets_in_strings_and_comments_do_not_count():
    assert unclosed_bracket("a = '['  # (\nb = 1\n") is None


def test_scopes_of_references():
    assert scopes_in_text("x = [@video/Modality(), @a/b/Foo, @Bar()]  # @c") == {"video", "a", "b"}


def test_unused_scopes_skip_referenced_and_known_ones():
    parse_config([MICRO_GIN])
    assert unused_scopes() == []
    parse_config([MICRO_GIN], ["audio/TubeMasking.ratio = 0.5"])
    assert [(scope, part) for scope, _, part, _ in unused_scopes()] == [("audio", "audio")]
    assert unused_scopes({"audio"}) == []


def test_gin_call_lines_are_split_off_innermost_first():
    text = ("bad\n  In call to configurable 'TubeMasking' (<class 'x'>) in scope 'video'\n"
            "  In call to configurable 'pretrain' (<function pretrain at 0x1>)")
    assert split_gin_calls(text) == ("bad", [("TubeMasking", "video"), ("pretrain", "")])
