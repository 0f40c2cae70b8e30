"""Utilities: LARS, schedulers, argument helpers, checkpoints, distributed helpers.

Mixed: the leaf modules (``checkpoint``, ``original_checkpoint``, ``distributed``) import nothing
of the package and may be used by every layer; ``args`` and ``callbacks`` assemble the CLI and the
trainer's callbacks from the higher layers.
"""
