"""The ebm plugin against the core's plugin conformance suite (genframe.testing), on real MNIST."""

from __future__ import annotations

import pytest
from conftest import TINY

from genframe.testing import RecipeContract

pytestmark = pytest.mark.usefixtures("data_dir")  # skips cleanly where MNIST is missing


class TestEBMConformance(RecipeContract):
    recipe = "ebm"
    # 64 images in batches of 16: the resume test crosses an epoch end (validation, epoch checkpoint).
    # 5 generation steps: the sampler test generates four times, and SGLD steps are most of its cost.
    overrides = [*TINY, "data.limit=64", "trainer.max_steps=null", "logging.sample_n=4", "sampler.generate_steps=5"]
