import platform

import pytest

from iscl_cli.allocator import limit_malloc_arenas


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_arena_limit():
    assert limit_malloc_arenas(1) is True

