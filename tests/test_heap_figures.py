"""How `borne bench memory-budget` reads the heap the agent prints (heapwatch.py): the block map
of micropython.mem_info(1) for either word size, and the "@mem" lines of a diagnostic build
(boards/unix_sim/cmodules/memtypes.c), so that a figure means the same on a 32-bit interpreter
as on the 64-bit one."""

from __future__ import annotations

from pathlib import Path

from borne import bench_memory, paths, workload


def test_the_block_map_is_read_in_the_interpreters_block_size() -> None:
    line = ["00000000: hh=.B==T"]
    assert bench_memory.allocations(line, word=8) == [(96, "B"), (64, "h"), (32, "h"),
                                                      (32, "T")]
    assert bench_memory.allocations(line, word=4) == [(48, "B"), (32, "h"), (16, "h"),
                                                      (16, "T")]
    # A qstr pool is told by its size (6 words, then a word and 3 bytes an entry, in whole
    # blocks), which depends on the word.
    assert bench_memory.label(592, "h", word=4) == "qstr pool (80 entries)"
    assert bench_memory.label(928, "h", word=8) == "qstr pool (80 entries)"


def test_the_heap_by_kind_sums_classes_functions_and_modules() -> None:
    heapmap = ["@heapmap 4096", "00000000: hh", "@mem 3 336 class Connector",
               "@mem 10 160 function app", "@mem 4 96 function ws", "@mem 2 32 function ws",
               "@mem 1 208 module app",
               "@mem 2 64 builtin str", "@mem 0 48 untyped -", "@mem 1 64 class ",
               "@heapmap end"]
    rows = bench_memory.by_kind(heapmap)
    assert rows[0] == (336, 3, "class", "Connector")
    assert (64, 1, "class", "?") in rows  # a class made without a name
    total, big, fns = bench_memory.kind_lines(rows, lambda n: n)
    assert total.split(", ") == ["class 400.0 (4)", "function 288.0 (16)", "module 208.0 (1)",
                                 "builtin str 64.0 (2)", "untyped 48.0"]
    assert big.startswith("class Connector 336.00, module app 208.00")
    # Function rows are per module (a def's and an async def's apart): summed by module.
    assert fns == "app 160.00 (10), ws 128.00 (6)"


def test_the_word_size_is_asked_of_the_interpreter() -> None:
    assert workload.word_bytes(Path(paths.micropython())) == 8  # the venv's: a 64-bit build


def test_the_block_map_read_is_the_one_at_the_peak_across_reboots() -> None:
    lines = ["@heapmap 1000", "00000000: h", "@heapmap end", "@heapmap 3000", "00000000: hh",
             "@mem 1 16 class Peak", "@heapmap end", "[sim] agent reset; rebooting",
             "@heapmap 1100", "00000000: h", "@heapmap end", "@heapmap 2000", "00000000: h"]
    # The reset's boot printed later maps, lower; the last one is cut short.
    assert workload.peak_heapmap(lines) == ["@heapmap 3000", "00000000: hh",
                                            "@mem 1 16 class Peak"]
    assert workload.peak_heapmap(["@heapmap 10", "00000000: h"]) == []


def test_name_counts_and_the_pools_step() -> None:
    from borne import mpyinfo

    def mod(name: str, *names: str) -> mpyinfo.Loaded:  # names: the interpreter's static apart
        return mpyinfo.Loaded(name, 0, 0, 0, 0, 0, 0, list(names))

    loader = {"a": mod("a", "x", "y"), "b": mod("b", "y", "z"), "c": mod("c", "w")}
    # "asyncio" is not in the build (frozen in the port)
    assert bench_memory.name_counts(loader, ["a", "b", "asyncio"]) == (3, 2, 4, 3)
    assert bench_memory.pool_steps(mpyinfo.Port.host(), 7) == 2540
