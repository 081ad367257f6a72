"""The sampler's paths, which of them this machine can run, and which ran in this test session.

Each test of one path carries ``@pytest.mark.sampler_path(NAME)`` and, through ``on_path(NAME)``, a skip
that names the CPU feature (or compiler, or GPU) missing here. conftest.py collects the outcomes and
ends the test output with one line: the paths that ran here and those skipped, with why.
"""

from __future__ import annotations

import functools
import os
import shutil

import pytest
import torch
from genframe_ebm.backends import native

PATHS = ("autograd", "fused", "native", "native-avx2", "native-avx512", "native-bf16", "cudagraph")


@functools.cache
def why_not(name: str) -> str | None:
    """Why ``name`` cannot run on this machine, or None where it can."""
    if name in ("autograd", "fused"):
        return None
    if name == "cudagraph":
        return None if torch.cuda.is_available() else "no CUDA GPU"
    if name == "native-bf16":
        reason = native.why_no_bf16()
    elif name in ("native", "native-avx2", "native-avx512"):  # native: the build GENFRAME_NATIVE_TARGET names
        missing = native.missing_features(native.forced_target() if name == "native" else name[len("native-"):])
        reason = f"this CPU lacks {', '.join(missing)}" if missing else None
    else:
        raise KeyError(f"unknown sampler path {name!r}; paths are {', '.join(PATHS)}")
    return reason or (None if shutil.which(os.environ.get("CC", "cc")) else "no C compiler (set $CC)")


def path_marks(name: str) -> list[pytest.MarkDecorator]:
    """The marks of a test (or a parameter) that exercises path ``name``."""
    reason = why_not(name)
    return [pytest.mark.sampler_path(name), pytest.mark.skipif(reason is not None, reason=reason or "")]


def on_path(name: str):
    """Decorator: this test exercises sampler path ``name`` (skipped, saying why, where it cannot run)."""
    def decorate(test):
        for mark in path_marks(name):
            test = mark(test)
        return test
    return decorate


def this_cpu_build() -> str:
    """What the default native path builds here, for the summary line."""
    try:
        target = native.forced_target()
    except ValueError as error:  # a misspelled GENFRAME_NATIVE_TARGET: its tests failed saying so
        return str(error).split(";")[0]
    return f"{native.default_lanes(target)} lanes, -march={native.TARGETS[target][1]}"


class PathReport:
    """The outcome of each path's tests in this session."""

    def __init__(self) -> None:
        self.paths_of: dict[str, list[str]] = {}  # id of a selected test -> the paths it exercises
        self.ran: set[str] = set()
        self.failed: set[str] = set()

    @staticmethod
    def label(items) -> None:
        """Give each test of a path its paths in ``user_properties``, which its reports carry, also from
        an xdist worker to the main process (deselected tests make no report: "not selected")."""
        for item in items:
            names = [mark.args[0] for mark in item.iter_markers("sampler_path")]
            if names:
                item.user_properties.append(("sampler_paths", tuple(names)))

    def record(self, report) -> None:
        for key, names in report.user_properties:
            if key == "sampler_paths":
                self.paths_of[report.nodeid] = list(names)
        for name in self.paths_of.get(report.nodeid, ()):
            if report.failed:
                self.failed.add(name)
            elif report.when == "call" and report.passed:
                self.ran.add(name)

    def line(self) -> str:
        """One line: every path, ran (passed or failed) or skipped with why, or not selected."""
        selected = {name for names in self.paths_of.values() for name in names}
        ran, skipped, unselected = [], [], []
        for name in PATHS:
            label = f"{name} ({this_cpu_build()})" if name == "native" else name
            if name in self.failed:
                ran.append(f"{label} FAILED")
            elif name in self.ran:
                ran.append(label)
            elif name not in selected:
                unselected.append(name)
            else:  # selected, and not one of its tests ran
                skipped.append(f"{name} ({why_not(name) or 'its selected tests were skipped'})")
        parts = [f"ran {', '.join(ran) or 'none'}"]
        if skipped:
            parts.append(f"skipped {'; '.join(skipped)}")
        if unselected:
            parts.append(f"not selected {', '.join(unselected)}")
        forced = os.environ.get(native.TARGET_ENV)
        suffix = f" [{native.TARGET_ENV}={forced}]" if forced else ""
        return f"sampler paths: {'; '.join(parts)}{suffix}"
