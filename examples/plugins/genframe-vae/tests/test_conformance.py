"""genframe's plugin conformance suite, run against this plugin's recipe (the plugin must be installed).

Every ``test_*`` method of ``RecipeContract`` runs here: config round-trips, a train step, state
round-trip, validation, sampling, and resume equals a straight run, each in a few seconds.
"""

from genframe.testing import RecipeContract


class TestVAEConformance(RecipeContract):
    recipe = "vae"
    # Small enough for seconds per test: narrow network, 64 images in batches of 16.
    overrides = ["trainer.batch_size=16", "data.limit=64", "model.channels=[8, 16]", "model.latent_dim=4",
                 "logging.sample_n=4"]
