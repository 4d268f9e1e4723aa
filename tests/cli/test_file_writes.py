"""Writing with bench.files: whole or not at all, beside the target, with the modes the umask
or the caller choose; the owner-only files and directories that hold secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.files import private_directory, private_file, write_atomic


def test_a_new_file_gets_what_the_umask_allows_and_text_is_utf8(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "report.txt", "café")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.txt").read_bytes() == "café".encode()
    assert stat.S_IMODE((tmp_path / "report.txt").stat().st_mode) == 0o640


def test_the_temporary_file_is_beside_the_target_and_gone_after(tmp_path, monkeypatch):
    """A rename within one directory is atomic; the temporary name is hidden and says what it is."""
    renamed: list[tuple[str, str]] = []
    replace = os.replace

    def watching(source: str, target: str) -> None:
        renamed.append((source, os.fspath(target)))
        replace(source, target)

    monkeypatch.setattr(os, "replace", watching)
    write_atomic(tmp_path / "record.json", b"{}")
    [(source, target)] = renamed
    assert Path(target) == tmp_path / "record.json"
    assert Path(source).parent == tmp_path
    assert Path(source).name.startswith(".record.json.") and source.endswith(".part")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_device_is_written_through_and_its_errors_named(tmp_path):
    # through a link of the test's own: were the device renamed over, only the link would go
    full = tmp_path / "full"
    full.symlink_to("/dev/full")
    with pytest.raises(ConfigError, match=f"^{full}: No space left on device$"):
        write_atomic(full, b"x" * 65536)
    assert full.is_symlink() and full.is_char_device()
    with pytest.raises(ConfigError, match=f"^{tmp_path}: is a directory$"):
        write_atomic(tmp_path, b"x")
    with pytest.raises(ConfigError, match="No such file or directory"):
        write_atomic(tmp_path / "no" / "such" / "dir.txt", b"x")


def test_private_directories_and_files_are_the_owners_only(tmp_path):
    nested = private_directory(tmp_path / "run" / "keys")
    assert nested == tmp_path / "run" / "keys"
    assert stat.S_IMODE(nested.stat().st_mode) == 0o700
    nested.chmod(0o755)
    assert stat.S_IMODE(private_directory(nested).stat().st_mode) == 0o700  # an existing one too
    key = nested / "ds.key"
    key.write_text("secret")
    key.chmod(0o644)
    private_file(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match=f"^{key}/sub: Not a directory$"):
        private_directory(key / "sub")
    with pytest.raises(ConfigError, match=f"^{nested}/missing: No such file or directory$"):
        private_file(nested / "missing")
