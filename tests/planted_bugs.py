"""Does the quick tier catch a planted one-line bug? Plants each bug below in turn, runs
``pytest -m "not slow" -x``, puts the line back, and prints whether the tier failed and how long it took.

    GENFRAME_DATA_DIR=../shared/datasets python tests/planted_bugs.py [NAME ...]

Each bug is one line of the product changed, in an area the quick tier must guard (docs/contributing.md).
A bug in a sampler path this CPU cannot run (AVX-512, bf16, CUDA graphs) is not planted here: those
paths' tests are skipped on such a machine, and the summary says so.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name -> (file, the line as it is, the line with the bug)
BUGS = {
    "config validation": ("genframe/config/sections.py", "    batch_size: PositiveInt = 128", "    batch_size: int = 128"),
    "checkpoint round-trip": ("genframe/training/runstate.py", '            ctx.model.load_state_dict(state["model"])',
                              '            pass'),
    "exact resume": ("plugins/ebm/genframe_ebm/trainer.py", '        restore_generator(self.generator, state["generator"])',
                     "        pass"),
    "sampler: autograd": ("plugins/ebm/genframe_ebm/sampler.py",
                          "        return x.detach().add_(grad.clamp_(-self.grad_clip, self.grad_clip), "
                          "alpha=step_size).clamp_(-1.0, 1.0)",
                          "        return x.detach().add_(grad.clamp_(-self.grad_clip, 2 * self.grad_clip), "
                          "alpha=step_size).clamp_(-1.0, 1.0)"),
    "sampler: fused": ("plugins/ebm/genframe_ebm/backends/swish_plan.py",
                       "            g = silu_backward_(g, pre[offset])  "
                       "# g is always a fresh temporary here: overwrite it",
                       "            g = silu_backward_(g, pre[offset] * 1.01)"),
    "sampler: native (this CPU's and AVX2 builds)": ("plugins/ebm/genframe_ebm/backends/native_src.py",
                                                     "    st(d, s * (1.0f + z * (1.0f - s)));",
                                                     "    st(d, s * (1.0f + z * (1.0f - s)) * 1.01f);"),
    "CLI error line": ("genframe/cli/group.py", "            error = click.ClickException(str(exc))",
                       "            error = click.ClickException(repr(exc))"),
    "evaluation": ("genframe/using/metrics.py",
                   "    value = (mu1 - mu2).square().sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * cross",
                   "    value = (mu1 - mu2).square().sum() + torch.trace(sigma1) + torch.trace(sigma2) - 1.9 * cross"),
}


def plant(name: str) -> tuple[bool, float, str]:
    """(caught, seconds, the first failing test) for bug ``name``."""
    path, line, bug = BUGS[name]
    file = REPO / path
    original = file.read_text(encoding="utf-8")
    assert original.count(line + "\n") == 1, f"{name}: the line to change is not in {path} exactly once"
    file.write_text(original.replace(line + "\n", bug + "\n"), encoding="utf-8")
    try:
        start = time.monotonic()
        # test_planted_bugs_lines fails on any planted line by construction: it must not be what catches one
        result = subprocess.run([sys.executable, "-m", "pytest", "-m", "not slow", "-n", "0", "-x", "-q",
                                 "-p", "no:cacheprovider",
                                 "--ignore", "tests/test_planted_bugs_lines.py", "--durations=0", "--durations-min=1000"],
                                cwd=REPO, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
    finally:
        file.write_text(original, encoding="utf-8")
    failed = [line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return result.returncode == 1 and bool(failed), seconds, (failed or ["(none)"])[0]


def main() -> None:
    names = sys.argv[1:] or list(BUGS)
    caught = 0
    for name in names:
        found, seconds, first = plant(name)
        caught += found
        print(f"{name:46} {'caught' if found else 'MISSED':7} {seconds:6.1f} s  {first}", flush=True)
    print(f"{caught} of {len(names)} planted bugs caught by the quick tier")
    sys.exit(0 if caught == len(names) else 1)


if __name__ == "__main__":
    main()
