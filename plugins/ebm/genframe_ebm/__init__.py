"""genframe-ebm: energy-based models (Swish CNN energy, SGLD sampling, replay buffer, CD training)."""

__version__ = "0.1.0"
