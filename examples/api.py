"""Use genframe from another project: train a recipe from a dict, load the checkpoint, sample.

    python examples/api.py [RUN_DIR]

A short run (a few CPU minutes at most); swap the dict for a config file path to train for real.
"""

import sys

import genframe

run_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/api-example"

config = {
    "trainer": {"max_steps": 20, "batch_size": 32, "device": "auto"},
    "sampler": {"steps": 20},
    "logging": {"loggers": ["jsonl"], "sample_n": 16, "sample_steps": 50},
}
result = genframe.train("ebm", config, run_dir=run_dir)
print(f"trained {result.step} steps, last metrics: { {k: round(v, 4) for k, v in result.metrics.items()} }")

model = genframe.load(result.run_dir)  # or a checkpoint file: runs/.../checkpoints/last.pt
output = model.sample(16, steps=100, keep_every=20, seed=1)
print(f"sampled {tuple(output.images.shape)} in [{output.images.min():.2f}, {output.images.max():.2f}], "
      f"chain of {len(output.chain)} states")

genframe.sample_to_files(result.run_dir, f"{run_dir}/api_samples.png", n=16, steps=100)
print(f"wrote {run_dir}/api_samples.png")
