"""Training a recipe: run assembly, the loop (read top to bottom), checkpoints, run directories,
callback dispatch, distributed training under torchrun, heartbeats, pre-run checks and previews.
"""
