import resource

from iscl_cli import memory
from iscl_cli.memory import format_bytes, memory_budget, slice_bytes


def test_the_budget_is_half_the_memory_or_of_the_address_space_limit(monkeypatch):
    physical = memory_budget() * 2
    monkeypatch.setattr(memory.resource, "getrlimit", lambda kind: (2 * 2**30, resource.RLIM_INFINITY))
    assert memory_budget() == min(physical, 2 * 2**30) // 2


def test_a_slice_costs_its_decoded_bytes_and_its_float_copies():
    assert slice_bytes(100, 200, decoded_bytes=40_000) == 40_000 + 100 * 200 * 4 * memory.SLICE_FLOAT_COPIES


def test_sizes_read_as_words():
    assert [format_bytes(n) for n in (512, 3 * 2**20, int(1.5 * 2**30))] == ["512 bytes", "3.0 MiB", "1.5 GiB"]
