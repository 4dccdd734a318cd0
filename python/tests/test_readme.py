"""The README's Python section: every ```python block runs, and the benchmark command works."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, requires_backend

pytestmark = requires_backend("jax")


def _python_section():
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Python\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Python' section"
    return match.group(1)


BLOCKS = re.findall(r"```python\n(.*?)```", _python_section(), re.S)


def test_section_has_code():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index):
    # From the repository root: the blocks use the bundled model's relative path.
    result = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]


def test_bench_command_runs():
    # The README's benchmark command on one small layer and one backend (the full run takes minutes).
    result = subprocess.run([sys.executable, "-m", "tconv3d.bench", "--backends", "jax", "--layers", "k3s2_op1_odd",
                             "--min-time", "0", "--no-model"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"k3s2_op1_odd\s+\|\s+[\d.]+\s+[\d.]+\s+[\d.]+x", result.stdout), result.stdout
    assert "FFI op inside jax.jit" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "tconv3d.bench", "--layers", "no_such_layer"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "no_such_layer" in bad.stderr
