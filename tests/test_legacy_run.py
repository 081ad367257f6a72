"""A run written before the callback core (commit c1304ec: checkpoint format 1, policies in trainer.*)
still resumes, samples and evaluates: its settings are read with their new keys (one notice), its
trainer's policy state moves to the callbacks, and the resumed run ends exactly where the old code's
straight run did (tests/fixtures/legacy-ebm-run/expected_step6.json, made by that code)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import genframe
from genframe.config import ConfigMovedWarning

sys.path.insert(0, str(Path(__file__).parent / "pins"))
from make_pins import records, weight_summary  # noqa: E402
from test_recipe_pins import close  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-ebm-run"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "old-run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl"):
        shutil.copy(FIXTURE / name, run / name)
    shutil.copy(FIXTURE / "last.pt.c1304ec", run / "checkpoints" / "last.pt")
    return run


def test_an_old_run_resumes_exactly(old_run, data_dir):
    torch.set_num_threads(1)
    with pytest.warns(ConfigMovedWarning) as moved:
        result = genframe.train("ebm", overrides=["trainer.max_steps=6"], resume=old_run, quiet=True)
    (notice,) = [str(w.message) for w in moved if issubclass(w.category, ConfigMovedWarning)]
    assert len([w for w in moved if "carries no checksum" in str(w.message)]) == 1  # older than checksums: one notice
    assert "trainer.cdiv_limit as callbacks.divergence_guard.limit" in notice
    assert "trainer.mixture as callbacks.snapshot_mixture.members" in notice
    expected = json.loads((FIXTURE / "expected_step6.json").read_text())
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["format"] == 2 and result.step == expected["step"] == 6
    assert state["config"]["callbacks"]["use"] == ["settle_gate", "snapshot_mixture"]
    for part in ("model", "sampling_model"):
        for tensor, values in expected[part].items():
            for index, (old, new) in enumerate(zip(values, weight_summary(state[part])[tensor])):
                close(old, new, f"{part}.{tensor}[{index}]")
    assert [r.keys() for r in records(old_run)] == [r.keys() for r in expected["records"]]
    for old, new in zip(expected["records"], records(old_run)):
        for key in old:
            close(old[key], new[key], key)


def test_an_old_run_samples_and_evaluates(old_run, data_dir):
    with pytest.warns(ConfigMovedWarning):
        loaded = genframe.load(old_run, device="cpu")
    assert type(loaded.model).__name__ == "SnapshotMixture"  # the checkpoint's sampling weights, as the run sampled
    assert tuple(loaded.sample(4, steps=3).images.shape) == (4, 1, 32, 32)
    with pytest.warns(ConfigMovedWarning):
        report = genframe.evaluate(old_run, n=20, steps=3, device="cpu", log=False)
    assert report["step"] == 4 and report["samples"]["fd"] > 0


def test_an_old_setting_that_was_removed_is_one_clear_error(old_run, data_dir):
    config = json.loads((old_run / "config.json").read_text())
    config["sampler"]["steps_min"] = 2
    (old_run / "config.json").write_text(json.dumps(config))
    state = torch.load(old_run / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["sampler"]["steps_min"] = 2
    torch.save(state, old_run / "checkpoints" / "last.pt")
    with pytest.raises(genframe.ConfigError, match=r"sampler.steps_min was removed .*--set sampler.steps_min=null"):
        genframe.train("ebm", overrides=["trainer.max_steps=6"], resume=old_run, quiet=True)
    result = genframe.train("ebm", overrides=["trainer.max_steps=6", "sampler.steps_min=null"], resume=old_run,
                            quiet=True)
    assert result.step == 6


def test_an_old_checkpoints_policy_state_moves_to_its_callbacks():
    from genframe_ebm.config import EBMConfig

    state = torch.load(FIXTURE / "last.pt.c1304ec", weights_only=True)
    mean, snapshots = state["trainer"]["cdiv_mean"], state["trainer"]["mixture"]
    assert mean != 0.0 and state["trainer_ranks"][0] is state["trainer"]  # one dict, reached twice
    upgraded = EBMConfig.upgrade_checkpoint(state)
    assert upgraded["callbacks"]["settle_gate"] == {"mean": mean}
    assert upgraded["callbacks"]["divergence_guard"]["streak"] == 0
    assert upgraded["callbacks"]["snapshot_mixture"]["snapshots"] is snapshots
    assert not {"cdiv_mean", "cdiv_streak", "mixture"} & set(upgraded["trainer"])
