"""Objectives: (outputs, batch) -> (loss, logs), each with a weight."""
