"""A table of bad inputs a user is likely to hit: each one gives a single ``Error:`` line that names
what was wrong, and a non-zero exit, never a traceback."""

from __future__ import annotations

import gzip
import os
import shutil

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY
from test_plugins import BROKEN, make_distribution

from genframe.cli.main import cli
from genframe.training.checkpoint import load_checkpoint

TINY_SETS = [arg for item in TINY for arg in ("--set", item)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir_module):
    """One tiny finished run, and a copy of its checkpoint claiming to come from another recipe."""
    import genframe

    base = tmp_path_factory.mktemp("bad-inputs")
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=base / "run", quiet=True)
    state = load_checkpoint(base / "run")
    state["recipe"] = "vae"
    torch.save(state, base / "vae.pt")
    (base / "damaged.pt").write_bytes((base / "run" / "checkpoints" / "last.pt").read_bytes()[:1000])
    (base / "empty-run").mkdir()
    return base


@pytest.fixture(scope="module")
def data_dir_module():
    path = os.environ.get("GENFRAME_DATA_DIR", "")
    if not os.path.isdir(os.path.join(path, "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR to the shared datasets folder")
    return path


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, data_dir_module):
    """Data folders with one broken file each (the rest links to the real files)."""
    base = tmp_path_factory.mktemp("bad-data")
    source = os.path.join(data_dir_module, "mnist")
    raw_labels = gzip.decompress(open(os.path.join(source, "train-labels-idx1-ubyte.gz"), "rb").read())
    broken = {
        "truncated": gzip.compress(raw_labels[:-100]),
        "wrong-magic": gzip.compress(b"\x00\x00\x08\x07" + raw_labels[4:]),
        "wrong-checksum": gzip.compress(raw_labels[:-1] + bytes([(raw_labels[-1] + 1) % 10])),
        "not-gzip": b"<html>not found</html>",
    }
    for name, payload in broken.items():
        folder = base / name / "mnist"
        folder.mkdir(parents=True)
        for file in os.listdir(source):
            os.symlink(os.path.join(source, file), folder / file)
        os.unlink(folder / "train-labels-idx1-ubyte.gz")
        (folder / "train-labels-idx1-ubyte.gz").write_bytes(payload)
    return base


def files(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "bad.toml").write_text("[trainer\nepochs = 3\n")
    (tmp_path / "bad.yaml").write_text("trainer: [1, 2\n")
    (tmp_path / "config.ini").write_text("[trainer]\n")
    (tmp_path / "other.toml").write_text('recipe = "vae"\n')
    (tmp_path / "typo.toml").write_text("[trainer]\nepoch = 3\n")
    (tmp_path / "a-directory.toml").mkdir()


CASES = [
    # (id, argv with {tmp}/{run}/{base}/{data} placeholders, env, fragment of the message)
    ("unknown recipe", ["run", "emb"], {}, "unknown recipe 'emb'. Did you mean 'ebm'?"),
    ("unknown model", ["run", "ebm", "--set", "model.name=resnet"], {}, "unknown model 'resnet'"),
    ("unknown dataset", ["run", "ebm", "--set", "data.name=cifar10"], {}, "unknown dataset 'cifar10'"),
    ("unknown logger", ["run", "ebm", *TINY_SETS, "--set", 'logging.loggers=["tensorbord"]', "--run-dir", "{tmp}/r1"],
     {}, "unknown logger 'tensorbord'. Did you mean 'tensorboard'?"),
    ("unknown key", ["run", "ebm", "--set", "trainer.epoch=3"], {}, "trainer.epoch: unknown key (did you mean trainer.epochs?)"),
    ("unknown section", ["run", "ebm", "--set", "optimizer.lr=1"], {}, "optimizer: unknown key"),
    ("mistyped value", ["run", "ebm", "--set", "trainer.epochs=abc"], {}, "trainer.epochs: Input should be a valid integer"),
    ("zero batch", ["run", "ebm", "--set", "trainer.batch_size=0"], {}, "trainer.batch_size: Input should be greater than 0"),
    ("negative batch", ["run", "ebm", "--set", "trainer.batch_size=-8"], {}, "trainer.batch_size: Input should be greater than 0"),
    ("zero learning rate", ["run", "ebm", "--set", "trainer.lr=0"], {}, "trainer.lr: Input should be greater than 0"),
    ("negative step size", ["run", "ebm", "--set", "sampler.step_size=-1"], {}, "sampler.step_size: Input should be greater than 0"),
    ("zero sampler steps", ["run", "ebm", "--set", "sampler.steps=0"], {}, "sampler.steps: Input should be greater than 0"),
    ("zero max_steps", ["run", "ebm", "--set", "trainer.max_steps=0"], {}, "trainer.max_steps: Input should be greater than 0"),
    ("zero buffer", ["run", "ebm", "--set", "buffer.size=0"], {}, "buffer.size: Input should be greater than 0"),
    ("fresh share above 1", ["run", "ebm", "--set", "buffer.fresh_prob=1.5"], {}, "buffer.fresh_prob: Input should be less than or equal to 1"),
    ("unknown device", ["run", "ebm", "--set", "trainer.device=tpu"], {}, "trainer.device: Value error, should be one of"),
    ("kernel list mismatch", ["run", "ebm", "--set", "model.kernel_sizes=[5, 3]"], {}, "give one kernel size per conv"),
    ("unknown callback", ["run", "ebm", "--set", 'callbacks.use=["emma"]'], {},
     "callbacks.use: unknown callback 'emma'. Did you mean 'ema'?"),
    ("bad callback setting", ["run", "ebm", "--set", "callbacks.divergence_guard.lr_factor=2"], {},
     "callbacks.divergence_guard.lr_factor: Input should be less than 1"),
    ("settings of a callback not on", ["run", "ebm", "--set", "callbacks.ema.decay=0.9"], {},
     "callbacks.ema: settings for a callback that is not on"),
    ("Adam beta above 1", ["run", "ebm", "--set", "trainer.betas=[2,0.999]"], {}, "trainer.betas.0: Input should be less than 1"),
    ("infinite learning rate", ["run", "ebm", "--set", "trainer.lr=Infinity"], {}, "trainer.lr: Input should be a finite number"),
    ("learning rate beyond float", ["run", "ebm", "--set", "trainer.lr=1e400"], {}, "trainer.lr: Input should be a finite number"),
    ("nan in a callback setting", ["run", "ebm", "--set", "callbacks.divergence_guard.lr_factor=nan"], {},
     "callbacks.divergence_guard.lr_factor: Input should be a finite number"),
    ("heartbeat timeout beyond a day", ["run", "ebm", "--set", "trainer.peer_timeout=1e30"], {},
     "trainer.peer_timeout: Input should be less than or equal to 86400"),
    ("seed too large", ["run", "ebm", "--set", "seed=99999999999999999999999"], {}, "seed: Input should be less than 4294967296"),
    ("negative seed", ["run", "ebm", "--set", "seed=-1"], {}, "seed: Input should be greater than or equal to 0"),
    ("image size against the data", ["run", "ebm", *TINY_SETS, "--set", "model.image_size=28", "--run-dir", "{tmp}/r7"],
     {}, "dataset mnist has examples of shape (1, 32, 32); set model.in_channels=1 and model.image_size=32"),
    ("channels against the data", ["run", "ebm", *TINY_SETS, "--set", "model.in_channels=3", "--run-dir", "{tmp}/r8"],
     {}, "make examples of shape (3, 32, 32), but dataset mnist"),
    ("buffer beyond memory", ["run", "ebm", *TINY_SETS, "--set", "buffer.size=1e12", "--run-dir", "{tmp}/r9"], {},
     "replay buffer (buffer.size=1000000000000): 3,814,697.3 GiB"),
    ("model beyond memory", ["run", "ebm", *TINY_SETS, "--set", "model.hidden=1e8", "--run-dir", "{tmp}/r10"], {},
     "model weights, gradients and optimizer state (model.*): 384.5 GiB"),
    ("batch beyond the data", ["run", "ebm", *TINY_SETS, "--set", "trainer.batch_size=100000000", "--run-dir", "{tmp}/r11"],
     {}, "trainer.batch_size: 100000000 is larger than the training data (60000 examples)"),
    ("previews beyond memory", ["run", "ebm", *TINY_SETS, "--set", "logging.sample_n=100000000", "--run-dir", "{tmp}/r12"],
     {}, "preview samples (logging.sample_n=100000000): "),
    ("--set without =", ["run", "ebm", "--set", "trainer.epochs"], {}, "must look like section.key=value"),
    ("missing config", ["run", "ebm", "--config", "{tmp}/missing.toml"], {}, "missing.toml does not exist"),
    ("empty config", ["run", "ebm", "--config", "{tmp}/empty.toml"], {}, "empty.toml is empty"),
    ("malformed TOML", ["run", "ebm", "--config", "{tmp}/bad.toml"], {}, "bad.toml is not valid TOML"),
    ("malformed YAML", ["run", "ebm", "--config", "{tmp}/bad.yaml"], {}, "bad.yaml is not valid YAML"),
    ("unknown extension", ["run", "ebm", "--config", "{tmp}/config.ini"], {}, "unknown extension '.ini'"),
    ("unreadable config", ["run", "ebm", "--config", "{tmp}/a-directory.toml"], {}, "a-directory.toml"),
    ("typo in config file", ["run", "ebm", "--config", "{tmp}/typo.toml"], {}, "trainer.epoch: unknown key"),
    ("config for another recipe", ["run", "ebm", "--config", "{tmp}/other.toml"], {}, "the config is for 'vae'"),
    ("missing data offline", ["run", "ebm", *TINY_SETS, "--set", "data.root={tmp}/no-data", "--run-dir", "{tmp}/r2"],
     {"GENFRAME_OFFLINE": "1"}, "train-images-idx3-ubyte.gz"),
    ("truncated data file", ["run", "ebm", *TINY_SETS, "--set", "data.root={data}/truncated", "--run-dir", "{tmp}/r3"],
     {"GENFRAME_OFFLINE": "1"}, "train-labels-idx1-ubyte.gz"),
    ("wrong-magic data file", ["run", "ebm", *TINY_SETS, "--set", "data.root={data}/wrong-magic", "--run-dir", "{tmp}/r4"],
     {"GENFRAME_OFFLINE": "1"}, "train-labels-idx1-ubyte.gz"),
    ("wrong-checksum data file", ["run", "ebm", *TINY_SETS, "--set", "data.root={data}/wrong-checksum", "--run-dir", "{tmp}/r5"],
     {"GENFRAME_OFFLINE": "1"}, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("not-gzip data file", ["run", "ebm", *TINY_SETS, "--set", "data.root={data}/not-gzip", "--run-dir", "{tmp}/r6"],
     {"GENFRAME_OFFLINE": "1"}, "train-labels-idx1-ubyte.gz"),
    ("run dir exists", ["run", "ebm", "--run-dir", "{base}/run"], {}, "already exists; continue it with --resume"),
    ("resume without checkpoint", ["run", "ebm", "--resume", "{base}/empty-run"], {}, "has no checkpoint"),
    ("resume a missing run", ["run", "ebm", "--resume", "{tmp}/never-ran"], {}, "does not exist"),
    ("checkpoint of another recipe", ["run", "ebm", "--resume", "{base}/vae.pt"], {}, "is a checkpoint of recipe 'vae', not 'ebm'"),
    ("damaged checkpoint", ["sample", "{base}/damaged.pt"], {}, "is damaged"),
    ("resume a finished run", ["run", "ebm", "--resume", "{base}/run"], {}, "already finished at step 2"),
    ("--config with --resume", ["run", "ebm", "--resume", "{base}/run", "--config", "{tmp}/typo.toml"], {},
     "--config cannot be combined with --resume"),
    ("--resume with --run-dir", ["run", "ebm", "--resume", "{base}/run", "--run-dir", "{tmp}/x"], {}, "leave out --run-dir"),
    ("sample on an unknown device", ["sample", "{base}/run", "--device", "tpu"], {}, "unknown device 'tpu'; use cpu, cuda"),
    ("sample nothing", ["sample", "{tmp}/nothing"], {}, "does not exist"),
    ("sample zero images", ["sample", "{base}/run", "--n", "0"], {}, "Invalid value for '--n'"),
    ("a grid named .jpg", ["sample", "{base}/run", "--out", "{tmp}/grid.jpg"], {},
     "grid.jpg: the picture is a PNG; name it grid.png"),
    ("a GIF named .png", ["sample", "{base}/run", "--gif", "{tmp}/chain.png"], {},
     "chain.png: the picture is a GIF; name it chain.gif"),
    ("plot without metrics", ["plot", "{base}/empty-run"], {}, "metrics.jsonl does not exist"),
    ("config show unknown recipe", ["config", "show", "nope"], {}, "unknown recipe 'nope'"),
    ("unknown command", ["trian"], {}, "No such command 'trian'"),
    ("plugin raises on import (strict)", ["plugins"], {"GENFRAME_STRICT_PLUGINS": "1"}, "plugin 'broken' failed to load: ImportError"),
    ("unknown plugin named (strict)", ["plugins"], {"GENFRAME_STRICT_PLUGINS": "1", "GENFRAME_PLUGINS": "ebm,nonexistent"},
     "plugin 'nonexistent' failed to load: GENFRAME_PLUGINS names it"),
    ("recipe of a broken plugin", ["run", "broken-recipe"], {}, "plugins that failed to load: broken: ImportError"),
]
if not torch.cuda.is_available():
    CASES.append(("GPU where none exists", ["run", "ebm", "--set", "trainer.device=cuda"], {}, "no CUDA GPU is available"))


@pytest.mark.parametrize("name,argv,env,fragment", CASES, ids=[case[0] for case in CASES])
def test_bad_input_gives_one_line_error(name, argv, env, fragment, tmp_path, trained, bad_data, monkeypatch):
    assert len(CASES) >= 25
    files(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_broken", "broken", "gf_broken_plugin", BROKEN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(__import__("sys").modules, "gf_broken_plugin", raising=False)
    args = [a.format(tmp=tmp_path, base=trained, data=bad_data) for a in argv]
    result = CliRunner().invoke(cli, args, env=env)
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert result.exit_code in (2, 3), (result.exit_code, result.output)
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert not (tmp_path / "no-data").exists()  # nothing was created on the way to the error
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("r") and p.name[1:].isdigit()]  # no run directory
    shutil.rmtree(site)
