"""keep_freed_memory: glibc then serves a large block that is freed and allocated again from the heap, mostly without
fresh pages; a process that did not call it faults on every page of every such block (measured on this project's
VMs: 10,241 faults per 40 MiB block by default, 870 kept)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from liquid.training.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]

# 40 MiB blocks: above glibc's largest dynamic mmap threshold (32 MiB), so by default each one is a fresh mmap
FAULTS_PER_ROUND = textwrap.dedent("""
    import resource, sys
    import torch
    sys.path.insert(0, {root!r})
    from liquid.training.allocator import keep_freed_memory
    if {keep}:
        assert keep_freed_memory()
    torch.empty(10 * 2**20).fill_(1.0)  # 40 MiB, first touch
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.empty(10 * 2**20).fill_(1.0)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")


def faults_per_round(keep: bool) -> float:
    code = FAULTS_PER_ROUND.format(root=str(ROOT), keep=keep)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    pages = 40 * 2**20 // 4096
    default, kept = faults_per_round(False), faults_per_round(True)
    assert default > pages / 2, f"the default allocator should map fresh pages for each 40 MiB block ({default})"
    assert kept < default / 4, f"kept memory should be reused: {kept} faults per block against {default} by default"


def test_threshold_must_be_positive():
    with pytest.raises(ValueError, match="threshold must be > 0"):
        keep_freed_memory(0)
