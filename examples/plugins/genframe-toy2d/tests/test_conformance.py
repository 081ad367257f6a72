"""genframe's plugin conformance suite, run against this plugin's recipe (the plugin must be installed).

No data files are needed: ring8 is generated from a fixed seed.
"""

from genframe.testing import RecipeContract


class TestToy2DConformance(RecipeContract):
    recipe = "toy2d"
    # 64 points in batches of 16, short chains: each test takes about a second.
    overrides = ["trainer.batch_size=16", "data.limit=64", "sampler.steps=5", "sampler.generate_steps=10",
                 "logging.sample_n=32"]
    sample_range = None  # points in the plane: no fixed range to check
