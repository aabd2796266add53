"""Shared files: atomic writes and exclusive locks (dataset cache, experiment logs, sweep budget)."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from oscsim.files import atomic_write, locked, write_json, write_text


def test_write_text_replaces_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "x_analysis.md"
    write_text(p, "a\n")
    write_text(p, "b\n")
    assert p.read_text() == "b\n"
    assert [f.name for f in p.parent.iterdir()] == ["x_analysis.md"]  # no temp file left behind


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "summary.json"
    write_json(p, {"a": 1})

    def boom(fh) -> None:
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_text() == '{\n  "a": 1\n}'
    assert [f.name for f in tmp_path.iterdir()] == ["summary.json"]


def _append_under_lock(lock: str, out: str, tag: str) -> None:
    with locked(lock):
        # read-modify-write: without the lock two processes would lose one another's line
        text = Path(out).read_text() if Path(out).exists() else ""
        for _ in range(200):
            Path(out).write_text(text)
        Path(out).write_text(text + tag + "\n")


def test_lock_serialises_processes(tmp_path: Path) -> None:
    lock, out = str(tmp_path / "d" / ".x.lock"), str(tmp_path / "out.txt")
    procs = [mp.get_context("fork").Process(target=_append_under_lock, args=(lock, out, str(i))) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert sorted(Path(out).read_text().split()) == ["0", "1", "2", "3"]
