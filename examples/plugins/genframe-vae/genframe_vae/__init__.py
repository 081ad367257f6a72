"""genframe-vae: a small convolutional VAE (ELBO training, decoding from the N(0, I) prior) as a genframe plugin."""

__version__ = "0.1.0"
