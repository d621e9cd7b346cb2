"""Keep freed host memory in the process (glibc malloc): a step's large temporaries are not page-faulted in again.

A CPU training step allocates and frees the same few-MB tensors every step: the logits and their log-softmax
(B*T, V), their gradients, the experts' (B*T, d_ff) activations. glibc serves blocks above its mmap threshold
(128 KiB at start, raised dynamically up to 32 MiB) with fresh `mmap` pages and returns them, and trims the top of
the heap past its trim threshold, so each step touches new pages and pays one page fault per 4 KiB. Under a
hypervisor a fault costs microseconds: on the 2-core VMs of this project ~1,800 faults per step
(`benchmarks/bench_malloc.py`), and the ops that write fresh (768, 2000) tensors ran several times slower inside a
step than alone (benchmarks/NOTES.md, session 18). Three `mallopt` settings keep the memory in the heap instead:

    M_MMAP_THRESHOLD = threshold      blocks below it come from the heap, never from their own mmap
    M_TRIM_THRESHOLD = 2 * threshold  free memory at the heap's top is kept up to this
    M_TOP_PAD        = threshold      the heap grows in large steps

The process then holds up to about `threshold` bytes of freed memory more than before (RSS, not a leak: it is
reused by the next step). What jemalloc or tcmalloc under LD_PRELOAD do, without a preload. No-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's <malloc.h>
DEFAULT_THRESHOLD = 256 * 2**20  # bytes; a default-run step's largest temporaries are ~6 MiB, a base-preset one's ~100


def keep_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Apply the three `mallopt` settings above; True when glibc accepted all three (False off Linux/glibc)."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0 bytes, got {threshold}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = min(threshold, 2**30)  # mallopt takes an int
    accepted = all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, limit), (M_TRIM_THRESHOLD, 2 * limit), (M_TOP_PAD, limit)))
    if accepted:
        logger.info("glibc malloc keeps freed memory (mmap threshold %d MiB): no page faults for step temporaries",
                    limit // 2**20)
    return accepted


__all__ = ["DEFAULT_THRESHOLD", "keep_freed_memory"]
