"""What holds secrets or the shim's records is the owner's only; `report --db` changes nothing."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench.crypto.pem import load_private_key
from bench.crypto.smki import init_pki
from bench.dcc.records.store import Store
from bench.errors import ConfigError
from bench.files import private_directory

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bench(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_pki_private_keys_are_owner_only(tmp_path):
    init_pki(tmp_path / "pki", seed="private")
    keys = [p for p in (tmp_path / "pki").rglob("*") if p.suffix == ".key" or p.name == "key.pem"]
    assert len(keys) > 10
    assert {mode(key) for key in keys} == {0o600}
    certificate = next((tmp_path / "pki").rglob("ds.pem"))
    assert mode(certificate) & 0o044  # public certificates stay readable


def test_a_world_readable_key_is_made_owner_only_when_loaded(tmp_path):
    source = ROOT / "fixtures" / "pki" / "parties" / "supplier-a" / "ds.key"
    key = tmp_path / "ds.key"
    key.write_bytes(source.read_bytes())
    key.chmod(0o644)  # what a git checkout gives the fixture keys
    load_private_key(key)
    assert mode(key) == 0o600


def test_shim_database_and_its_files_are_owner_only(tmp_path):
    path = tmp_path / "run" / "bench.sqlite"
    store = Store(path)
    try:
        store.group_commit(lambda conn: conn.execute(
            "INSERT INTO party (name, eui, org_role) VALUES ('p', '00', 'IS')"))
        files = sorted(path.parent.iterdir())
        assert {p.name for p in files} >= {"bench.sqlite", "bench.sqlite-wal", "bench.sqlite-writer"}
        assert {mode(p) for p in files} == {0o600}
    finally:
        store.close()


def test_run_directories_are_owner_only(tmp_path):
    assert mode(private_directory(tmp_path / "a" / "run")) == 0o700
    existing = tmp_path / "open"
    existing.mkdir(mode=0o755)
    assert mode(private_directory(existing)) == 0o700


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["other sqlite database", "not a database", "empty file"])
def test_report_db_refuses_what_is_not_a_shim_database_and_leaves_it_alone(kind, tmp_path):
    path = tmp_path / "some.db"
    if kind == "other sqlite database":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
        conn.close()
    elif kind == "not a database":
        path.write_bytes(b"SQLite format 3\x00 but not really" * 10)
    else:
        path.write_bytes(b"")
    before = _digest(path)
    result = bench("report", "--db", path, "--run-dir", tmp_path / "no-rig", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not a shim database" in result.stderr
    assert _digest(path) == before
    assert not (tmp_path / "some.db-writer").exists()
    if kind == "other sqlite database":
        tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("notes",)]


def test_report_reads_a_shim_database_read_only(tmp_path):
    path = tmp_path / "bench.sqlite"
    Store(path).close()
    path.chmod(0o400)  # a results directory kept read-only
    before = _digest(path)
    result = bench("report", "--db", path, "--format", "json", "--run-dir", tmp_path / "no-rig",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert _digest(path) == before
    with pytest.raises(ConfigError, match="not a shim database"):
        Store(ROOT / "pyproject.toml", read_only=True)
