"""The flow recipe's score for ``genframe score`` and ``genframe ood``: the velocity model's log-likelihood per
dimension (the core's ``genframe.flow_log_likelihood``) with the sampler's ``likelihood_steps``."""

from __future__ import annotations

import genframe


def loglik(model, sampler, images, generator):
    """Log-likelihood per dimension, higher = more typical; seeded by ``generator`` (the Hutchinson probes)."""
    return genframe.flow_log_likelihood(model, images, getattr(sampler, "likelihood_steps", 20), generator)
