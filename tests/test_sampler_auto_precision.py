"""sampler.precision = "auto": bf16 products only where a race on this machine finds them clearly faster, the
choice said once, recorded in the run's checkpoint and kept on resume. The race is stubbed both ways (and the
bf16 kernel stood in for by the fp32 one, which runs on every CPU), so the choice is tested on any machine."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY
from genframe_ebm.backends import native, race
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from sampler_paths import why_not

import genframe
from genframe.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(why_not("native") is not None, reason=f"native kernels: {why_not('native')}")


@pytest.fixture
def bf16_here(monkeypatch):
    """A CPU with bf16 products, as far as the choice can tell: its bf16 kernel is the fp32 one; the race's
    answer is set by the test (``set(speedup)``) and counted."""
    fp32_load = native.load

    def load(spec, required=False, quiet=False):
        if spec.precision == "bf16":
            spec = native.NativeSpec(**{**spec.__dict__, "precision": "fp32", "lanes": None})
        return fp32_load(spec, required, quiet)

    monkeypatch.setattr(native, "why_no_bf16", lambda: None)
    monkeypatch.setattr(native, "load", load)
    def set_speedup(speedup: float) -> list:
        races = []  # this answer's races
        monkeypatch.setattr(race, "bf16_speedup", lambda *args: races.append(speedup) or speedup)
        return races

    return set_speedup


def chains(precision: str = "auto") -> tuple[SGLDSampler, SwishEnergyNet, torch.Tensor]:
    sampler = SGLDSampler(steps=2, precision=precision, impl="native", threads=1)
    return sampler, SwishEnergyNet(), torch.rand(16, 1, 32, 32) * 2 - 1


@pytest.mark.parametrize(("speedup", "taken"), [(2.0, "bf16"), (1.05, "fp32"), (0.94, "fp32")])
def test_auto_takes_bf16_only_where_the_race_finds_it_clearly_faster(bf16_here, capfd, speedup, taken):
    races = bf16_here(speedup)
    sampler, model, init = chains()
    assert sampler.chosen_precision is None  # nothing chosen before the chains first run
    sampler.sample(model, init)
    sampler.sample(model, init)
    assert races == [speedup]  # once per model and settings, not per call
    assert sampler.chosen_precision["precision"] == taken and sampler.chosen_precision["speedup"] == speedup
    said = [line for line in capfd.readouterr().err.splitlines() if "sampler.precision='auto'" in line]
    assert len(said) == 1 and f"takes {taken} here: the bf16 kernel ran {speedup:.2f}x" in said[0]  # said once


def test_auto_is_fp32_without_a_race_where_the_cpu_has_no_bf16(monkeypatch):
    monkeypatch.setattr(native, "why_no_bf16", lambda: "this CPU has no AVX-512 BF16 dot products (avx512_bf16)")
    monkeypatch.setattr(race, "bf16_speedup", lambda *args: pytest.fail("raced where bf16 cannot run"))
    sampler, model, init = chains()
    sampler.sample(model, init)
    assert sampler.chosen_precision == {"precision": "fp32", "speedup": None,
                                        "why": "this CPU has no AVX-512 BF16 dot products (avx512_bf16)"}
    assert sampler.implementation(model, init) == "native"
    explicit, _, _ = chains("fp32")
    explicit.sample(model, init)
    assert explicit.chosen_precision is None  # fp32 and bf16 mean themselves: nothing to choose


def test_the_race_times_both_kernels_once_per_machine_and_remembers(monkeypatch, tmp_path):
    monkeypatch.setenv("GENFRAME_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(race, "_records", {})
    plan_model = SwishEnergyNet()
    from genframe_ebm.backends.swish_plan import SwishPlan

    plan = SwishPlan.for_model(plan_model, (1, 32, 32))
    kernels = native.load(plan.native_spec())
    speedup = race.bf16_speedup(plan, kernels, kernels, 1, 0.03)  # the same kernel twice: a tie, give or take
    assert 0.2 < speedup < 5 and len(list(tmp_path.glob("choice_*.json"))) == 1
    monkeypatch.setattr(race, "_records", {})
    monkeypatch.setattr(race, "_race", lambda *args: pytest.fail("raced again on a machine that remembers"))
    assert race.bf16_speedup(plan, kernels, kernels, 1, 0.03) == speedup


@pytest.mark.slow
def test_a_run_records_the_choice_and_its_resume_keeps_it(bf16_here, data_dir, tmp_path, capfd):
    settings = [*TINY, "sampler.precision=auto", "sampler.impl=native", "trainer.max_steps=2",
                "trainer.checkpoint_every=1", "logging.sample_n=0", "logging.chain_n=0"]
    bf16_here(2.0)
    run = tmp_path / "run"
    genframe.train("ebm", overrides=settings, run_dir=run, quiet=True)
    recorded = load_checkpoint(run / "checkpoints" / "last.pt")["trainer"]["chain_precision"]
    assert recorded["precision"] == "bf16" and recorded["speedup"] == 2.0
    races = bf16_here(0.5)  # a new race would now say fp32: the resumed run keeps its own choice
    capfd.readouterr()
    genframe.train("ebm", overrides=["trainer.max_steps=4"], resume=run, quiet=True)
    assert races == [] and "sampler.precision='auto' keeps bf16, the run's recorded choice" in capfd.readouterr().err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["trainer"]["chain_precision"] == recorded


def test_a_race_record_of_the_earlier_format_is_read_without_racing_again(monkeypatch, tmp_path):
    # before precision "auto" the cache held {"native": bool, "seconds": ...} under the same file name
    import hashlib
    import json

    from genframe_ebm.backends.swish_plan import SwishPlan

    monkeypatch.setenv("GENFRAME_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(race, "_records", {})
    plan = SwishPlan.for_model(SwishEnergyNet(), (1, 32, 32))
    kernels = native.load(plan.native_spec())
    name = hashlib.sha256(f"{kernels.build}\n1\n{torch.__version__}".encode()).hexdigest()[:20]
    (tmp_path / f"choice_{name}.json").write_text(json.dumps(
        {"native": False, "seconds": {"native": 1.0, "fused": 2.0}, "threads": 1, "chains": 16}))
    monkeypatch.setattr(race, "_race", lambda *args: pytest.fail("raced again on a machine that remembers"))
    assert race.native_is_faster(plan, kernels, 1, 0.03) is False  # the recorded answer, as it was written
