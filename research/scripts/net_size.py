"""Each recipe's net by its size: parameters and multiply-adds of one pass over one 32 x 32 image.

    python research/scripts/net_size.py ebm=examples/ebm_mnist_fast.toml flow=examples/flow_mnist_fast.toml

Builds each net from its recipe's config (``RECIPE=CONFIG``) and counts, with forward hooks, the multiply-adds
of every convolution and linear layer in one forward pass (what a generation step costs before the activations,
norms and the backward pass a Langevin step adds; for an autoencoder, the encoder's and the decoder's together).
Prints a Markdown table; the families report quotes it.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import genframe


def multiply_adds(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-adds of convolutions and linear layers in one forward pass of a batch of one."""
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                      if isinstance(module, nn.Conv2d) else module.in_features)
        total += output[0].numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("nets", nargs="+", metavar="RECIPE=CONFIG", help="a recipe's name and its config file")
    args = p.parse_args()
    rows = ["| recipe | config | parameters | multiply-adds a pass (millions) |", "|---|---|---:|---:|"]
    for spec in args.nets:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"Error: {spec!r} is not RECIPE=CONFIG; write e.g. flow=examples/flow_mnist_fast.toml")
        try:
            config, recipe = genframe.recipe_config(name, path), genframe.get_recipe(name)
        except genframe.GenframeError as error:  # an unknown recipe, a bad config: one line, as the CLI says it
            raise SystemExit(f"Error: {error}") from None
        model = recipe.build_model(config).eval()
        inputs = recipe.model_inputs(config, torch.zeros(1, config.model.in_channels, 32, 32))  # a flow: and a time
        parameters = sum(p.numel() for p in model.parameters())
        rows.append(f"| {name} | `{path}` | {parameters:,} | {multiply_adds(model, *inputs) / 1e6:.2f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
