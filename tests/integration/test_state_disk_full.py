"""The state file's disk runs full during a snapshot (issue 17, defect 14e), on a real filesystem:
a tmpfs mounted with a size limit, filled but for a little room, so that the state store's writes
fail with the operating system's ENOSPC (SQLite's SQLITE_FULL) at different points of the run.

The failure must say that the disk is full and where; what the state records must be true (a
chunk recorded done has its documents in the target); and once space is freed, running again
resumes and ends with exactly the source's rows, read back with plain SQL and pymongo.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.state import SQLiteStateStore
from tests.support.cli_process import migrator_script
from tests.support.docs import Migration

ROWS = 400
DISK = "4m"
SCHEMA = f"""
CREATE TABLE parts (id int PRIMARY KEY, label text NOT NULL, weight int NOT NULL);
INSERT INTO parts SELECT i, repeat('p', i % 50) || i, i * 7 FROM generate_series(1, {ROWS}) AS i;
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of a few MB of its own (root only: mounting needs it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave_kb: int) -> Path:
    """Fill the filesystem but for `leave_kb` KiB; the filler file, to delete to free space."""
    stats = os.statvfs(mount)
    free_kb = stats.f_bavail * stats.f_frsize // 1024
    filler = mount / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * 1024
        for _ in range(max(0, free_kb - leave_kb)):
            f.write(chunk)
    return filler


def source_parts(mig: Migration) -> list[tuple[int, str, int]]:
    return [
        (int(i), str(lbl), int(w))
        for i, lbl, w in mig.rows("SELECT id, label, weight FROM parts ORDER BY id")
    ]


def target_parts(mig: Migration) -> list[tuple[int, str, int]]:
    return sorted((int(d["_id"]), str(d["label"]), int(d["weight"])) for d in mig.documents("parts"))


def run_snapshot(plan: Path, state: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [migrator_script(), "run", str(plan), "--until", "snapshot", "--state", str(state)],
        env={**os.environ, **env},
        cwd=plan.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("leave_kb", [12, 160, 700])
def test_a_full_state_disk_fails_clearly_and_the_snapshot_resumes_once_space_is_back(
    pg_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, small_disk: Path, leave_kb: int
) -> None:
    mig = Migration(pg_url, mongo_url, mongo_db_name, tmp_path, small_disk / "state.db")
    try:
        mig.sql(SCHEMA)
        name = f"full-{leave_kb}"
        plan = mig.plan(
            "- {name: parts, from: parts, key: id}", name=name, phases="snapshot: {chunk_rows: 10}"
        )
        filler = fill(small_disk, leave_kb)

        failed = run_snapshot(plan, mig.state_path, mig.env)
        assert failed.returncode == 3, failed.stdout + failed.stderr  # operational (docs/json.md)
        said = " ".join(failed.stderr.split())
        assert f"the disk holding state file {mig.state_path} is full" in said, failed.stderr
        assert "free space on the filesystem" in said and "Traceback" not in failed.stderr, failed.stderr

        filler.unlink()  # space is back
        # What the state recorded is true: a chunk recorded done has its documents in the target.
        stored = (
            {doc_id for doc_id, _, _ in target_parts(mig)}
            if "parts" in mig.client[mig.database].list_collection_names()
            else set()
        )
        with SQLiteStateStore(mig.state_path) as store:
            runs = store.runs(name)
            done = [c for run in runs for c in store.chunks(run.id) if c.status == "done"]
        for chunk in done:
            lo = int(chunk.lo[0]) if chunk.lo is not None else 0
            hi = int(chunk.hi[0]) if chunk.hi is not None else ROWS
            assert set(range(lo + 1, hi + 1)) <= stored, (
                f"chunk {chunk.chunk_id} recorded done without its data"
            )

        resumed = run_snapshot(plan, mig.state_path, mig.env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert target_parts(mig) == source_parts(mig)
        with SQLiteStateStore(mig.state_path) as store:
            (run,) = [r for r in store.runs(name) if r.status == "active"]
            chunks = store.chunks(run.id)
            assert chunks and all(c.status == "done" for c in chunks)
            assert sum(c.rows_read for c in chunks) == ROWS
    finally:
        mig.close()
