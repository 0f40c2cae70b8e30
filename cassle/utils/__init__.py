"""Utilities: LARS, schedulers, argument helpers, checkpoints, distributed helpers."""
