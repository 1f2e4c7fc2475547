"""Test-time training on streams (video-ttt, methods.md §15): walk.py adapts a Y-shaped model
(masked objectives beside a `Classification` head) item by item and predicts; summary.py scores
the walk against the same model without adaptation; run.py is `mmmae ttt`."""
