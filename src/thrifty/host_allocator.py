"""Host memory reused between training steps instead of mapped afresh each step (glibc only).

By default glibc serves every block of 32 MiB or more with its own ``mmap`` and unmaps it on
``free``, so a tensor of that size written every step (an activation, a gradient, a chunk of
logits) is faulted in again page by page every step. On a 2-core CPU that cost a plain HF
training loop 13–26% of its step and thrifty's own 1–5%, whose chunked LM head already avoids
the largest blocks (BENCHMARKS.md, "Where thrifty's eager lead comes from: the host allocator").
Turning ``mmap`` off for the process and keeping freed memory in the heap makes glibc reuse
those blocks, which is what a caching allocator such as jemalloc or tcmalloc would also do;
it needs no extra package, so the ``thrifty`` command does it for itself at start-up.

The cost: memory freed by the process stays with it until it exits (its resident size stays
near its peak), which suits a run that allocates the same tensors every step. It is a
process-wide setting, so the library never changes it on import; only the command line does,
and a user keeps glibc's default with ``THRIFTY_HOST_ALLOCATOR=default``. Written by hand
because the two ``mallopt`` calls are the whole job: no maintained package wraps them.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

OPT_OUT_VARIABLE = "THRIFTY_HOST_ALLOCATOR"
# The user's own malloc tuning, or another allocator loaded in glibc's place, wins.
USER_CHOICES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
PRELOADED_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes a C int: the largest trim threshold it can be given (2 GiB) keeps the heap's
# free top for all but the largest models; beyond it glibc trims and faults in as before.
LARGEST_TRIM_THRESHOLD = 2**31 - 1


def reuse_large_blocks(environ: dict[str, str] | None = None) -> bool:
    """Make this process's glibc ``malloc`` reuse freed large blocks. Returns whether it did;
    it does nothing off glibc, when opted out, or when the user tuned or replaced malloc."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT_VARIABLE, "").strip().lower() == "default":
        return False
    if any(name in environ for name in USER_CHOICES):
        return False
    preload = environ.get("LD_PRELOAD", "")
    if any(name in preload for name in PRELOADED_ALLOCATORS):
        return False
    mallopt = glibc_mallopt()
    if mallopt is None:
        return False
    done = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, LARGEST_TRIM_THRESHOLD) == 1
    log.debug("host allocator: large blocks %s", "reused" if done else "left to glibc's default")
    return done


def glibc_mallopt():
    """glibc's ``mallopt``, or None where malloc is not glibc's (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(None)  # the running process's own symbols
    except (OSError, TypeError):  # TypeError: Windows has no such handle
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt
