"""The contracts a plugin implements and the core calls: components (Dataset, Model, Sampler,
Trainer, Recipe, Logger), callbacks and their control, the run context, errors, and the pluggy hook
specifications. The bottom of the house: it imports nothing else of genframe but ``genframe.util``.
"""
