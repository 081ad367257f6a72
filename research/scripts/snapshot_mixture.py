"""How much one model's quality jumps between nearby checkpoints, and how much a mixture of them does.

    python research/scripts/snapshot_mixture.py CHECKPOINT... [--n 10000] [--mix 2 4] [--members 1 4]
                                          [--from-step A] [--to-step B]

For each checkpoint (sorted by step, one per step), generates ``--n`` samples with the recipe's own
generation settings and prints its fd, confidence, class spread and how many samples the classifier puts in
each class; then, for each K in ``--mix``, the fd of an equal mixture of the last K checkpoints' samples
(the first n/K samples of each), which is what the ``snapshot_mixture`` callback with ``members = K``
samples when the checkpoints are its snapshots. For checkpoints of a ``snapshot_mixture`` run, "fd" is the
run's whole mixture, and ``--members k...`` adds the fd of the mixture of its last k members (k = 1: the
trained net alone), which is how a smaller ``callbacks.snapshot_mixture.members`` would have sampled the
same training. Collect checkpoints while a
run trains, e.g. by copying ``RUN/checkpoints/last.pt`` after each epoch. Figures depend on the
machine's threads only through speed; quote them with the command.
"""

from __future__ import annotations

import argparse

import torch

from genframe.using.load import load
from genframe.using.evaluate import EVAL_CHUNK, shared_evaluator
from genframe.using.generation import generate_in_chunks
from genframe.using.metrics import features_and_probs
from genframe.plugins.host import get_host
from genframe_ebm.mixture import SnapshotMixture


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--n", type=int, default=10000, help="samples per checkpoint")
    parser.add_argument("--mix", type=int, nargs="*", default=[2, 4], help="mixture sizes K")
    parser.add_argument("--from-step", type=int, default=0)
    parser.add_argument("--to-step", type=int, default=None)
    parser.add_argument("--members", type=int, nargs="*", default=[],
                        help="for checkpoints of a snapshot_mixture run: the fd of the mixture of its last k "
                             "members too (k = 1: the trained net alone), for each k given")
    args = parser.parse_args(argv)

    models = sorted((load(path, "cpu") for path in args.checkpoints), key=lambda m: m.step)
    seen, kept, rows = set(), [], []
    for model in models:
        if model.step in seen or model.step < args.from_step or (args.to_step is not None and model.step > args.to_step):
            continue
        seen.add(model.step)
        evaluator = shared_evaluator(get_host().registry, model.config.data)
        images = generate_in_chunks(model.sampler, model.model, args.n, None, 0, stream=7, device=model.device,
                                    chunk=EVAL_CHUNK).images
        kept.append(images)
        row = {"step": model.step, **evaluator(images)}
        _, probs = features_and_probs(evaluator.classifier, images)
        row["classes"] = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist()
        line = (f"step {row['step']} fd {row['fd']:.2f} conf {row['confidence']:.3f} spread {row['class_spread']:.3f} "
                f"classes {row['classes']}")
        for k in args.members:
            if isinstance(model.model, SnapshotMixture) and k <= len(model.model.members):
                part = SnapshotMixture(list(model.model.members[-k:]))
                inner = generate_in_chunks(model.sampler, part, args.n, None, 0, stream=7, device=model.device,
                                           chunk=EVAL_CHUNK).images
                row[f"last{k}_fd"] = evaluator(inner)["fd"]
                line += f" | last{k} {row[f'last{k}_fd']:.2f}"
        for k in args.mix:
            if len(kept) >= k:
                mixed = torch.cat([batch[: args.n // k] for batch in kept[-k:]])
                row[f"mix{k}_fd"] = evaluator(mixed)["fd"]
                line += f" | mix{k} {row[f'mix{k}_fd']:.2f}"
        print(line, flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
