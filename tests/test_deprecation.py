"""The one versioned deprecation helper: old module paths keep working with one warning that names the
new path and the version that removes the old; a deprecation past its version is an error."""

from __future__ import annotations

import subprocess
import sys

import pytest

import genframe
from genframe.util.deprecation import deprecate


def test_an_old_module_path_imports_the_moved_module_with_one_warning():
    code = ("import warnings, genframe\nwarnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    from genframe.hookspecs import hookimpl\n"
            "    import genframe.policies.ema as ema\n"
            "import genframe.contracts.hookspecs as new\n"
            "assert hookimpl is new.hookimpl and ema.__name__ == 'genframe.callbacks.ema'\n"
            "for w in caught: print(w.category.__name__, w.message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == ("GenframeDeprecationWarning importing genframe.hookspecs is deprecated since genframe 0.2 "
                        "and goes in 0.4: import from genframe.contracts.hookspecs (or the public names from the "
                        "package itself)")
    assert any("importing genframe.policies.ema" in line for line in lines[1:])


def test_deprecate_warns_with_the_versions_and_what_to_do_instead():
    with pytest.warns(genframe.GenframeDeprecationWarning, match=r"^the knob is deprecated since genframe 0.2 and "
                                                                 r"goes in 0.4: use the dial$"):
        deprecate("the knob", since="0.2", until="0.4", instead="use the dial", current="0.2.0")


def test_a_deprecation_past_its_version_is_an_error_so_it_cannot_outlive_its_promise():
    with pytest.raises(RuntimeError, match=r"goes in 0.4: use the dial \(this is 0.4.1: remove the deprecated code\)"):
        deprecate("the knob", since="0.2", until="0.4", instead="use the dial", current="0.4.1")


def test_a_plugin_uses_the_same_helper_for_its_own_moved_modules():
    code = ("import warnings\nwarnings.simplefilter('always')\n"
            "import genframe_ebm\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import genframe_ebm.fastpath as old\n"
            "print(old.__name__)\n"
            "for w in caught: print(w.category.__name__, w.message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("genframe_ebm.backends.")
    assert out[1].startswith("GenframeDeprecationWarning importing genframe_ebm.fastpath is deprecated since "
                             "genframe 0.2 and goes in 0.4")


def test_a_renamed_setting_is_read_under_its_new_name_with_a_warning(monkeypatch):
    from genframe_ebm.config import EBMConfig

    from genframe.config.sections import build_config

    monkeypatch.setattr(EBMConfig, "renamed_settings", {"trainer.learning_rate": ("trainer.lr", "0.2", "0.4")})
    expected = r"the setting trainer.learning_rate is deprecated since genframe 0.2 and goes in 0.4: write trainer.lr"
    with pytest.warns(genframe.GenframeDeprecationWarning, match=expected):
        config = build_config(EBMConfig, overrides=["trainer.learning_rate=0.003"])
    assert config.trainer.lr == 0.003


def test_a_module_that_was_split_still_answers_every_old_name():
    code = ("import warnings\nwarnings.simplefilter('ignore')\n"
            "from genframe.api import check_output_paths, get_recipe, load, sample_to_files\n"
            "from genframe.completion import inpaint_images, inpaint_to_files\n"
            "from genframe.previews import GIF_FRAMES, Previewer\n"
            "import genframe.using.sample as sample\n"
            "assert sample_to_files is sample.sample_to_files and GIF_FRAMES == 50\n")
    subprocess.run([sys.executable, "-c", code], check=True)
