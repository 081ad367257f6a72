"""genframe-toy2d: an energy-based model of eight Gaussians on a ring, as a genframe plugin whose samples are 2-D points."""

__version__ = "0.1.0"
