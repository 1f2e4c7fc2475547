"""Shared fixtures: gin and Accelerate state reset between tests, the micro config."""

from pathlib import Path

import gin
import pytest
from accelerate.state import AcceleratorState, GradientState

MICRO_GIN = str(Path(__file__).parent / "fixtures" / "micro.gin")


@pytest.fixture(autouse=True)
def fresh_global_state():
    """gin bindings and Accelerate's singletons are process-wide: start every test clean."""
    gin.clear_config()
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    gin.clear_config()
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
