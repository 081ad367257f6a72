"""Using a trained model beyond sampling: `genframe score`, `ood`, `inpaint`, `denoise` and their Python API,
on a small EBM trained on real MNIST; the detection metrics, masks and input sets they rest on."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY
from PIL import Image
from sampler_paths import why_not

import genframe
from genframe.cli.main import cli
from genframe.contracts.errors import DataError
from genframe.using.detection import aupr, auroc, fpr_at_tpr
from genframe.using.masks import known_pixels

# fp32 native chains on every CPU: the recipe's bf16 runs only where AVX-512 BF16 exists, and "auto" races
# native against fused on the machine's load, so the trained model would differ by CPU, not just in rounding
SHORT = ["trainer.max_steps=75", "trainer.batch_size=64", "callbacks.evaluation.every_steps=100000",
         "logging.sample_every=100000", 'logging.loggers=["jsonl"]', "callbacks.snapshot_mixture.every=25",
         "sampler.precision=fp32", f"sampler.impl={'fused' if why_not('native') else 'native'}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not os.path.isdir(os.path.join(os.environ.get("GENFRAME_DATA_DIR", ""), "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR")
    run_dir = tmp_path_factory.mktemp("scoring") / "run"
    genframe.train("ebm", REPO / "examples" / "ebm_mnist_fast.toml", SHORT, run_dir=run_dir, quiet=True)
    return run_dir


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


# ---- the measures -------------------------------------------------------------------------------------------

def test_auroc_is_the_chance_an_in_score_beats_an_out_score_ties_half():
    generator = torch.Generator().manual_seed(0)
    inside = torch.randint(0, 20, (300,), generator=generator).float()  # many ties
    outside = torch.randint(-5, 15, (200,), generator=generator).float()
    pairs = (inside[:, None] > outside[None]).double() + 0.5 * (inside[:, None] == outside[None]).double()
    assert auroc(inside, outside) == pytest.approx(float(pairs.mean()), abs=1e-12)
    assert auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0


def test_aupr_and_fpr_at_95_tpr_by_hand():
    inside, outside = torch.tensor([3.0, 2.0, 1.0]), torch.tensor([2.5, 0.0])
    # ranked 3 (in), 2.5 (out), 2 (in), 1 (in), 0 (out): precision at each in-image 1, 2/3, 3/4
    assert aupr(inside, outside) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # keeping 95% of the in-set needs the threshold at its lowest score, 1: the out-score 2.5 passes
    assert fpr_at_tpr(inside, outside) == 0.5
    assert fpr_at_tpr(torch.arange(100.0), torch.arange(100.0) - 50) == pytest.approx(45 / 100)


def test_masks_hide_what_they_name(tmp_path):
    assert not known_pixels("bottom-half", 1, 32, 32)[0, 0, 16:].any() and known_pixels("bottom-half", 1, 32, 32)[0, 0, :16].all()
    assert not known_pixels("left-half", 1, 32, 32)[0, 0, :, :16].any()
    center = known_pixels("center", 1, 32, 32)[0, 0]
    assert int((~center).sum()) == 16 * 16 and not center[8:24, 8:24].any()
    random = known_pixels("random:0.5", 40, 32, 32, seed=3)
    assert random.shape == (40, 1, 32, 32) and 0.45 < float((~random).float().mean()) < 0.55
    assert torch.equal(random[10:20], known_pixels("random:0.5", 10, 32, 32, seed=3, offset=10))  # chunk-proof
    drawn = np.zeros((32, 32), np.uint8)
    drawn[:, 20:] = 255
    Image.fromarray(drawn).save(tmp_path / "mask.png")
    from_file = known_pixels(str(tmp_path / "mask.png"), 1, 32, 32)
    assert from_file[0, 0, :, :20].all() and not from_file[0, 0, :, 20:].any()
    Image.fromarray(drawn[:28, :28]).save(tmp_path / "small.png")
    for spec, fragment in (("random:2", "between 0 and 1"), ("diagonal", "neither a file nor"),
                           (str(tmp_path / "small.png"), "is 28x28 pixels, but the images are 32x32")):
        with pytest.raises(DataError, match=fragment):
            known_pixels(spec, 1, 32, 32)


# ---- the input sets -----------------------------------------------------------------------------------------

def sets(specs, n=None, shape=(1, 32, 32)):
    from genframe.config.sections import DataConfig
    from genframe.plugins.host import get_host
    from genframe.using.inputs import parse_inputs

    return parse_inputs(specs, shape, DataConfig(name="mnist"), get_host().registry, n)


def whole(image_set):
    images, labels = zip(*image_set.chunks(7))
    return torch.cat(images), None if labels[0] is None else torch.cat(labels)


def test_built_in_and_derived_sets(data_dir):
    noise, flipped, inverted, test = sets(["noise", "flipped:2,4,5,7", "inverted", "mnist:test"], n=30)
    first, _ = whole(noise)
    assert first.shape == (30, 1, 32, 32) and first.min() >= -1 and first.max() <= 1
    assert torch.equal(first[5:9], noise.read(5, 9)[0])  # the same images however they are chunked
    originals, labels = whole(test)
    upside_down, flipped_labels = whole(flipped)
    assert set(flipped_labels.tolist()) <= {2, 4, 5, 7}
    rows = torch.nonzero(torch.isin(sets(["mnist:test"])[0].read(0, 200)[1], torch.tensor([2, 4, 5, 7]))).flatten()
    assert torch.equal(upside_down[0], sets(["mnist:test"])[0].read(int(rows[0]), int(rows[0]) + 1)[0][0].flip(-2))
    assert torch.equal(whole(inverted)[0], -originals)
    assert flipped.dataset is None and test.dataset == "mnist"  # upside-down labels are not the classifier's to read


def test_files_folders_and_tensor_files_are_read_as_the_model_takes_them(tmp_path, data_dir):
    pixels = np.zeros((32, 32), np.uint8)
    pixels[8:24, 14:18] = 255
    for name in ("a", "b"):
        (tmp_path / "digits" / name).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "digits" / name / "x.png")
    Image.fromarray(pixels).save(tmp_path / "one.png")
    np.save(tmp_path / "images.npy", np.stack([pixels, pixels])[:, None])
    folder, files, tensor = sets([str(tmp_path / "digits"), str(tmp_path / "one.png"), str(tmp_path / "one.png"),
                                  str(tmp_path / "images.npy")])
    images, labels = whole(folder)
    assert images.shape == (2, 1, 32, 32) and labels.tolist() == [0, 1] and images.max() == 1 and images.min() == -1
    assert files.count == 2 and torch.equal(whole(files)[0][0], images[0])  # files in a row are one set
    assert torch.equal(whole(tensor)[0], images)


def test_bad_inputs_are_one_line(tmp_path, data_dir):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.dstack([np.zeros((32, 32), np.uint8), np.full((32, 32), 200, np.uint8),
                               np.zeros((32, 32), np.uint8)])).save(tmp_path / "colour.png")
    np.save(tmp_path / "wide.npy", np.zeros((3, 1, 32, 40), np.float32))
    for spec, fragment in ((str(tmp_path / "small.png"), "shape 1 x 28 x 28 (channels x height x width), but the "
                                                         "model takes 1 x 32 x 32"),
                           (str(tmp_path / "colour.png"), "is a colour image, but the model takes one-channel"),
                           (str(tmp_path / "wide.npy"), "1 x 32 x 40"),
                           ("mnist:valid", "splits are 'train' and 'test'"),
                           ("flipped:two", "classes are numbers"),
                           ("inverted:3", "only flipped takes classes"),
                           ("mnits:test", "no file, folder, dataset split or built-in set")):
        with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            sets([spec])


# ---- the commands on a trained model ------------------------------------------------------------------------

@pytest.mark.slow
def test_score_writes_every_score_and_a_histogram_and_matches_the_api(run, tmp_path):
    result = invoke("score", run, "mnist:test", "noise", "--n", 120, "--out", tmp_path / "s.csv",
                    "--plot", tmp_path / "s.png", "--score", "score", "--device", "cpu")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 240 and {row["input"] for row in rows} == {"mnist:test", "noise"}
    assert Image.open(tmp_path / "s.png").size[0] > 300
    model = genframe.load(run, device="cpu")
    first = sets(["mnist:test"], n=4)[0].read(0, 4)[0]
    # the CSV keeps 6 significant digits (5e-6 relative); scores near 0 need an absolute floor
    assert model.score(first, "score").tolist() == pytest.approx([float(row["score"]) for row in rows[:4]], rel=2e-5,
                                                                 abs=1e-6)
    digits = [float(row["score"]) for row in rows if row["input"] == "mnist:test"]
    noise = [float(row["score"]) for row in rows if row["input"] == "noise"]
    assert min(digits) > max(noise)  # 75 steps tell digits from noise: measured -0.027 against -0.655 at most
    assert "mnist:test" in result.output and "wrote" in result.output


@pytest.mark.slow
def test_the_histogram_goes_beside_the_csv_not_into_the_current_folder(run, tmp_path, monkeypatch):
    where, elsewhere = tmp_path / "results", tmp_path / "cwd"
    where.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("score", run, "noise", "--n", 16, "--score", "score", "--out", where / "s.csv",
                    "--device", "cpu")  # the raw score: no pool of samples to draw
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in where.iterdir()) == ["s.csv", "scores.png"] and list(elsewhere.iterdir()) == []
    assert f"wrote {where / 's.csv'}, {where / 'scores.png'}" in result.output
    with_plot = invoke("score", run, "noise", "--n", 16, "--score", "score", "--out", "t.csv", "--plot", where / "t.svg",
                       "--device", "cpu")
    assert with_plot.exit_code == 0, with_plot.output  # a --plot given goes where it says
    assert sorted(p.name for p in elsewhere.iterdir()) == ["t.csv"] and (where / "t.svg").is_file()


@pytest.mark.slow
def test_ood_reports_each_out_set_writes_ood_json_and_logs(run):
    result = invoke("ood", run, "--out", "noise", "--out", "inverted", "--out", "flipped:2,4,5,7", "--n", 300,
                    "--score", "score", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((run / "ood.json").read_text())
    assert report["in"]["name"] == "mnist:test" and report["in"]["n"] == 300
    assert list(report["out"]) == ["noise", "inverted", "flipped:2,4,5,7"]
    assert report["out"]["noise"]["auroc"] > 0.99 and report["out"]["noise"]["fpr95"] < 0.05
    assert 0 <= report["out"]["flipped:2,4,5,7"]["auroc"] <= 1 and (run / "ood.png").is_file()
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("ood/flipped_2_4_5_7/auroc" in row for row in logged)  # a key every logger accepts
    assert "AUROC" in result.output and "noise" in result.output


@pytest.mark.slow
def test_inpaint_holds_the_known_pixels_and_measures_labels(run, tmp_path):
    result = invoke("inpaint", run, "--images", "mnist:test", "--mask", "bottom-half", "--n", 40, "--match", 300,
                    "--out", tmp_path / "in.png", "--tensor", tmp_path / "in.npy", "--device", "cpu")
    assert result.exit_code == 0, result.output
    completed = torch.from_numpy(np.load(tmp_path / "in.npy"))
    originals = sets(["mnist:test"], n=40)[0].read(0, 40)[0]
    assert torch.equal(completed[..., :16, :], originals[..., :16, :])  # the known half, exactly
    assert not torch.equal(completed[..., 16:, :], originals[..., 16:, :])
    report = json.loads((run / "inpaint.json").read_text())
    assert set(report["accuracy"]) == {"originals", "masked", "completions", "noise completions"}
    assert report["accuracy"]["originals"] > 0.9 and report["n"] == 40
    assert Image.open(tmp_path / "in.png").size == ((8 * 34 + 2) * 2, (3 * 4 * 34 + 2) * 2)  # --grid-n 32: 4 blocks of 3 rows
    assert "completions" in result.output
    assert report["match"] == 300 and report["steps"] == 3
    api = genframe.load(run, device="cpu").inpaint(originals[:3], known_pixels("center", 1, 32, 32), steps=4, match=0)
    assert torch.equal(api[..., :8, :], originals[:3, ..., :8, :])


def test_a_matched_start_is_the_mean_of_the_closest_samples_on_the_known_pixels():
    from genframe.using.completion import matched_start

    pool = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)])
    pool[:, :, 2:] = torch.arange(5.0).view(5, 1, 1, 1)  # the hidden rows tell the samples apart
    image = torch.full((1, 1, 4, 4), 0.4)
    known = torch.zeros((1, 1, 4, 4), dtype=torch.bool)
    known[..., :2, :] = True
    start = matched_start(pool, image, known, neighbours=2)  # closest on the top rows: 0.5 (index 3), 0.0 (index 2)
    assert torch.allclose(start[0, 0, 2:], torch.full((2, 4), 2.5)) and torch.allclose(start[0, 0, :2], torch.full((2, 4), 0.25))


@pytest.mark.slow
def test_denoise_reports_psnr_before_and_after(run, tmp_path):
    result = invoke("denoise", run, "--images", "mnist:test", "--noise", 0.3, "--n", 20, "--steps", 3,
                    "--out", tmp_path / "d.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((run / "denoise.json").read_text())
    # Gaussian noise of std 0.3 in [-1, 1] units is 0.15 on the [0, 1] scale: PSNR about 16.5 dB before
    # clipping at the range's ends, which only removes error
    assert 16.0 < report["psnr"]["noisy"] < 22.0 and np.isfinite(report["psnr"]["denoised"])
    assert "PSNR" in result.output and (tmp_path / "d.png").is_file()


@pytest.mark.slow
def test_the_commands_refuse_bad_input_in_one_line(run, tmp_path):
    one_error_line(invoke("score", run, "mnist:valid", "--plot", tmp_path / "p.png"), "splits are 'train' and 'test'")
    one_error_line(invoke("score", run, "noise", "--score", "loudness", "--plot", tmp_path / "p.png"),
                   "no score 'loudness'", "gradnorm")
    one_error_line(invoke("score", run, "noise", "--plot", tmp_path / "p.gif"), ".png, .svg, .pdf")
    one_error_line(invoke("inpaint", run, "--images", "mnist:test", "--mask", "random:1.5", "--out",
                          tmp_path / "i.png"), "random:P")
    one_error_line(invoke("denoise", run, "--images", "mnist:test", "--noise", "-1", "--out", tmp_path / "d.png"),
                   "--noise -1")
    one_error_line(invoke("ood", run, "--out", "fashion:test"), "no file, folder, dataset split or built-in set")
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "i.png").exists()


def test_a_recipe_without_a_score_or_refine_is_refused_in_one_line(tmp_path, data_dir, monkeypatch):
    from example_plugins import install_example

    install_example(REPO / "examples" / "plugins" / "genframe-vae", tmp_path / "site", monkeypatch)
    vae = tmp_path / "vae"
    genframe.train("vae", overrides=["trainer.max_steps=2", "trainer.batch_size=16", 'logging.loggers=["jsonl"]'],
                   run_dir=vae, quiet=True)
    one_error_line(invoke("score", vae, "noise", "--n", 4, "--plot", tmp_path / "p.png"), "offers no score")
    one_error_line(invoke("inpaint", vae, "--images", "mnist:test", "--n", 4, "--out", tmp_path / "i.png"),
                   "cannot hold pixels fixed")


@pytest.mark.slow
def test_the_ebm_scores_read_the_trained_net_of_the_mixture(run):
    model = genframe.load(run, device="cpu")
    images = sets(["mnist:test"], n=6)[0].read(0, 6)[0]
    members = list(model.model.members)  # the fast recipe samples with a mixture of snapshots
    with torch.no_grad():
        assert torch.allclose(model.score(images, "score"), members[-1](images))
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(members[-1](x).sum(), x)
    assert torch.allclose(model.score(images, "gradnorm"), -grad.flatten(1).norm(dim=1))
    assert torch.equal(model.score(images, "drop", seed=1), model.score(images, "drop", seed=1))  # seeded


@pytest.mark.slow
def test_the_default_score_is_the_distance_to_the_models_own_samples_in_the_nets_features(run, monkeypatch):
    from genframe_ebm import scores

    from genframe.using.generation import generate_in_chunks

    monkeypatch.setattr(scores, "POOL_SIZE", 300)  # the shipped 10000 cost a CI machine ~10 s per model
    model = genframe.load(run, device="cpu")
    images = sets(["mnist:test"], n=6)[0].read(0, 6)[0]
    samples = generate_in_chunks(model.sampler, model.model, 300, None, scores.POOL_SEED, scores.POOL_STREAM,
                                 "cpu").images
    net = model.model.members[-1].net  # 4 convolutions, each with its Swish: the last two's outputs are compared
    brute = torch.zeros(len(images), dtype=torch.float64)
    with torch.no_grad():
        for cut in (6, 8):
            mine, theirs = net[:cut](images).flatten(1).double(), net[:cut](samples).flatten(1).double()
            among = torch.cdist(theirs, theirs).fill_diagonal_(float("inf")).min(1).values  # each to its nearest other
            for i, x in enumerate(mine):
                brute[i] += min(float((x - s).norm()) for s in theirs) / among.std()
    assert model.score(images).tolist() == pytest.approx((-brute).tolist(), rel=1e-4)  # the default
    monkeypatch.setattr("genframe.using.generation.iter_chunks", None)  # drawn once per model: no second draw
    assert model.score(images[:2], "nearest").tolist() == pytest.approx((-brute[:2]).tolist(), rel=1e-4)
    with torch.no_grad():
        next(model.model.parameters()).add_(0.0)  # an in-place change of the weights, as load_state_dict makes
    with pytest.raises(TypeError):  # a changed model draws its samples anew (here into the patched-out draw)
        model.score(images[:2])


def test_ood_of_a_run_on_your_own_data_reads_its_own_test_split(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr("genframe_ebm.scores.POOL_SIZE", 100)
    digits = sets(["mnist:train"], n=300)[0].read(0, 300)[0]
    np.save(tmp_path / "digits.npy", ((digits + 1) * 127.5).round().to(torch.uint8).numpy())
    own = tmp_path / "own"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2", "data.name=tensorfile",
                                     f"data.path={tmp_path / 'digits.npy'}"], run_dir=own, quiet=True)
    result = invoke("ood", own, "--out", "noise", "--n", 20, "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((own / "ood.json").read_text())
    assert report["in"]["name"] == "tensorfile:test" and report["in"]["n"] == 20  # 10% of 300 held out, cut to 20


def test_random_draws_of_different_purposes_are_independent(data_dir):
    from genframe.using.completion import add_noise

    image = whole(sets(["gaussian"], n=1)[0])[0]  # N(0, 0.5^2) clipped
    noise = add_noise(torch.zeros_like(image), 1.0, 0, 0)
    assert abs(float(torch.corrcoef(torch.stack([image.flatten(), noise.flatten()]))[0, 1])) < 0.15
    mask = known_pixels("random:0.5", 1, 32, 32)
    assert abs(float(torch.corrcoef(torch.stack([mask.flatten().float(), image.flatten()]))[0, 1])) < 0.15


@pytest.mark.slow
def test_refine_takes_the_steps_sample_would_take_with_its_set_up_done_once(run):
    model = genframe.load(run, device="cpu")
    x = model.sampler.init_state(40, generator=torch.Generator().manual_seed(0))
    known = known_pixels("bottom-half", 1, 32, 32)
    straight, generator = x, torch.Generator().manual_seed(1)
    for _ in range(6):  # one sample() call per step, the known pixels put back: what refine must equal
        straight = torch.where(known, x, model.sampler.sample(model.model, straight, 1, generator=generator).images)
    assert torch.equal(model.sampler.refine(model.model, x, known, 6, torch.Generator().manual_seed(1)), straight)
