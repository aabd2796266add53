"""The allocator setting: a training step's large buffers come from (and go back to) the process's heap, not fresh
mmaps, so a step reuses the last step's pages (README, Batched trials: the page faults of a compiled batch)."""
import ctypes
import subprocess
import sys

import pytest


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")  # glibc >= 2.33
    except OSError:
        return False

# In a fresh process: bytes glibc serves by mmap while a 16 MiB tensor is alive (mallinfo2's hblkhd).
PROBE = """
import ctypes, sys, torch
from oscsim.host import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd
x = torch.ones(2**22)
print(libc.mallinfo2().hblkhd - before)
"""


def mapped_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="glibc's malloc (>= 2.33)")
def test_large_buffers_come_from_the_heap_once_freed_memory_is_kept():
    assert mapped_bytes("default") >= 16 * 2**20  # glibc's default: a fresh mapping, unmapped again when freed
    assert mapped_bytes("keep") == 0  # kept: served from the heap, whose freed pages the next step reuses
