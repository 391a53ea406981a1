"""Process-wide memory allocator settings for long streaming runs."""

from __future__ import annotations

import ctypes

# glibc's mallopt parameter number for the arena limit (malloc.h: M_ARENA_MAX).
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Ask glibc's malloc to keep at most ``arenas`` memory arenas; True if it took the setting.

    ``iscl denoise`` reads the next slice in a thread while the main thread denoises the
    current one; with glibc's default of one arena per thread the large slice buffers,
    allocated in one arena and freed from the other thread, fragment both, and the peak
    resident memory crept up with the slice count (520 MiB after 1024 slices of 1024 x 1024
    against 465 MiB with one arena, docs/benchmarks.md). Elsewhere (macOS, musl) this is a no-op.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1
