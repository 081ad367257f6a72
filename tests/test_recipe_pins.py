"""The shipped recipes train exactly as before the callback core: pins taken from the code before it
(tests/pins/make_pins.py, commit c1304ec; evaluations re-measured with the stored ruler, which every CPU
measures with) with every moved policy acting within a few dozen steps
(the guard rolls back, and in the fast recipe finishes; the settle gate holds checkpoints back; the
snapshot mixture snapshots; EMA averages; keep-best writes best.pt). A later change that alters a
recipe on purpose re-pins it and says so."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "pins"))
from make_pins import PINS, run_scenario  # noqa: E402

PINNED = json.loads(PINS.read_text(encoding="utf-8"))

# The pins' old keys, as the settings are written now.
NEW_KEYS = {
    "trainer.ema=0.9": ['callbacks.use=["ema"]', "callbacks.ema.decay=0.9"],
    "trainer.mixture=3": ["callbacks.snapshot_mixture.members=3"],
    "trainer.mixture_every=4": ["callbacks.snapshot_mixture.every=4"],
    "trainer.cdiv_settle=0.03": ["callbacks.settle_gate.settle=0.03"],
}


def new_overrides(overrides: list[str]) -> list[str]:
    result = []
    for item in overrides:
        key, _, value = item.partition("=")
        if item in NEW_KEYS:
            result += NEW_KEYS[item]
        elif key in ("trainer.cdiv_limit", "trainer.cdiv_patience", "trainer.max_rollbacks"):
            setting = {"cdiv_limit": "limit", "cdiv_patience": "patience"}.get(key[8:], key[8:])
            result.append(f"callbacks.divergence_guard.{setting}={value}")
        elif key.startswith("eval."):
            result.append(f"callbacks.evaluation.{key[5:]}={value}")
        else:
            result.append(item)
    return result


# Training figures: the same arithmetic on another CPU differs in the last bits. Measured against the pins
# (taken on an AMD Zen 4): 2.0e-6 relative at most on a Zen 3 (AVX2); on an Intel Xeon (AVX-512, AMX) every
# training figure passed at 1e-5 (no finer figure was recorded there). So 1e-5, 5x the measured spread.
TRAINING_TOLERANCE = 1e-5
# Evaluations use the stored ruler (tests/fixtures/ruler: the same classifier weights on every CPU), so
# they differ across CPUs only as the samples do. Measured on a Zen 3: samples scaled by 1 + 1e-5 noise (5x
# the training figures' spread), 40 draws, moved fd by 2.3e-6 and confidence by 4.1e-6 relative and no
# sample's class (coverage, confident: 0); the classifier's other kernels (channels-last) moved fd by 6e-9.
# 1e-4 is 25x that, and 100x tighter than the 1.1-3% a classifier trained on the machine moves them.
RULER_TOLERANCE = 1e-4


# The ruler's metrics added after the pins were taken: measured by tests/test_ruler.py, not pinned here (a k-NN
# count moves by a whole sample where another CPU's last bits move a distance across a radius).
RULER_V2 = {"kid", "kid_std", "precision", "recall", "density", "knn_coverage"}


def pinned_names(record: dict) -> dict:
    """A pinned record under today's metric names (``coverage`` is ``class_spread`` now)."""
    return {("/".join([*key.split("/")[:-1], "class_spread"]) if key.rpartition("/")[2] == "coverage" else key): value
            for key, value in record.items()}


def close(expected, actual, where: str) -> None:
    """Equal numbers, to TRAINING_TOLERANCE (evaluations: RULER_TOLERANCE)."""
    if isinstance(expected, float) and isinstance(actual, float):
        tolerance = RULER_TOLERANCE if where.split()[-1].startswith("eval/") else TRAINING_TOLERANCE
        assert math.isclose(expected, actual, rel_tol=tolerance, abs_tol=1e-7), f"{where}: {expected!r} != {actual!r}"
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


def same_reason(expected: str, actual: str) -> bool:
    """A rollback's reason names the same signal value, step and outcome (setting names moved)."""
    def key(text: str) -> tuple:
        return (text.split(" beyond ")[0], re.findall(r"at step \d+|rolled back to step \d+|finished there|"
                                                      r"learning rate [\d.e-]+", text))
    return key(expected) == key(actual)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PINNED))
def test_recipe_trains_as_pinned(name, tmp_path, data_dir):
    torch.set_num_threads(1)  # as the pins were taken: a reduction's order can depend on the thread count
    actual, expected = run_scenario(name, tmp_path / name, new_overrides), PINNED[name]
    for key in ("status", "step", "rollbacks", "best_step"):
        assert actual[key] == expected[key], f"{key}: {actual[key]!r}, pinned {expected[key]!r}"
    assert len(actual["records"]) == len(expected["records"])
    for index, (old, new) in enumerate(zip(expected["records"], actual["records"])):
        old = pinned_names(old)
        new = {key: value for key, value in new.items() if key.rpartition("/")[2] not in RULER_V2}
        assert set(old) == set(new), f"record {index}: keys {sorted(new)}, pinned {sorted(old)}"
        for key in old:
            if key == "reason":
                assert same_reason(old[key], new[key]), f"record {index}: {new[key]!r}, pinned {old[key]!r}"
            else:
                close(old[key], new[key], f"record {index} {key}")
    for part in ("model", "sampling_model"):
        assert (part in actual) == (part in expected), part
        for tensor, values in expected.get(part, {}).items():
            for i, (old, new) in enumerate(zip(values, actual[part][tensor])):
                close(old, new, f"{part}.{tensor}[{i}]")
