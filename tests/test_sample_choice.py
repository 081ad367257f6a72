"""At a run's end keep-best chooses what the run samples with by measurement: its sampling weights (here a
snapshot mixture), the trained net alone, or best.pt; the choice is recorded, said, and followed by
genframe.load. The evaluator is stubbed with set figures, so the choice does not depend on the CPU."""

from __future__ import annotations

import pytest
from conftest import TINY
from genframe_ebm.mixture import SnapshotMixture

import genframe
import genframe.using.evaluate
from genframe.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # trains tiny runs

RUN = [*TINY, "trainer.max_steps=6", 'callbacks.use=["snapshot_mixture"]', "callbacks.snapshot_mixture.every=1",
       "callbacks.snapshot_mixture.members=2", "callbacks.evaluation.every_steps=3", "callbacks.evaluation.n=8",
       "logging.sample_n=0", "logging.chain_n=0"]


@pytest.fixture
def figures(monkeypatch):
    """The evaluator's fd for each evaluation, in order: (sampling weights, trained net) at each one."""
    def set_figures(*evaluations: tuple[float, float]) -> None:
        values = iter([fd for pair in evaluations for fd in pair])
        evaluator = lambda samples: {"fd": next(values)}  # noqa: E731
        monkeypatch.setattr(genframe.using.evaluate, "shared_evaluator", lambda *args: evaluator)
    return set_figures


def test_the_net_alone_is_sampled_with_when_it_measured_better_than_the_mixture(data_dir, tmp_path, figures, capfd):
    figures((9.0, 8.0), (5.0, 3.0))  # steps 3 and 6: the net alone wins at the end
    run = tmp_path / "run"
    genframe.train("ebm", overrides=RUN, run_dir=run, quiet=True)
    chosen = load_checkpoint(run)["extra"]["sample_with"]
    assert chosen["weights"] == "model" and chosen["candidates"] == {"sampling_model": 5.0, "model": 3.0,
                                                                        "best.pt": 9.0}
    assert ("genframe: the run samples with the trained net alone (eval/fd 3; the weights it samples with 5, "
            "best.pt (step 3) 9)") in capfd.readouterr().err
    loaded = genframe.load(run)
    assert not isinstance(loaded.model, SnapshotMixture) and loaded.provenance["weights"] == "model"


def test_best_pt_is_sampled_with_when_an_earlier_evaluation_beat_the_end(data_dir, tmp_path, figures):
    figures((2.0, 4.0), (5.0, 6.0))
    run = tmp_path / "run"
    genframe.train("ebm", overrides=RUN, run_dir=run, quiet=True)
    assert load_checkpoint(run)["extra"]["sample_with"]["weights"] == "best.pt"
    loaded = genframe.load(run)
    assert loaded.checkpoint.name == "best.pt" and loaded.step == 3 and isinstance(loaded.model, SnapshotMixture)


def test_the_sampling_weights_stay_when_they_measured_best_and_training_on_chooses_again(data_dir, tmp_path, figures):
    figures((4.0, 6.0), (1.0, 3.0), (7.0, 2.0), (8.0, 9.0))
    run = tmp_path / "run"
    genframe.train("ebm", overrides=RUN, run_dir=run, quiet=True)
    assert load_checkpoint(run)["extra"]["sample_with"]["weights"] == "sampling_model"
    loaded = genframe.load(run)
    assert isinstance(loaded.model, SnapshotMixture) and loaded.checkpoint.name == "last.pt" and loaded.step == 6
    genframe.train("ebm", overrides=["trainer.max_steps=12"], resume=run, quiet=True)  # 1.0 at step 6 is best now
    chosen = load_checkpoint(run)["extra"]["sample_with"]
    assert chosen["weights"] == "best.pt" and chosen["best_step"] == 6 and genframe.load(run).step == 6
