"""The read limits of bench.files at their shipped values: a file or line exactly at a limit is
read, one byte more is refused naming the limit; raising a limit tenfold fails a test here."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench import files
from bench.crypto.pem import load_certificate
from bench.errors import ConfigError
from bench.files import LineTooLong, bounded_lines, read_limited, read_text_limited

CERTIFICATE = Path(__file__).resolve().parents[2] / "fixtures" / "pki" / "parties" / "supplier-a" / "ds.pem"


def test_the_shipped_limits_are_what_their_inputs_need():
    assert files.KIB == 1024 and files.MIB == 1024 * 1024
    assert files.PEM_LIMIT == 256 * 1024
    assert files.TEXT_LIMIT == 4 * 1024 * 1024
    # a hex log line holds the largest GBT-reassembled GBCS message (64 KiB) in hex, with room
    assert 2 * 64 * 1024 < files.LINE_LIMIT == 256 * 1024


def test_text_is_read_up_to_the_shipped_text_limit(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_bytes(b"#" * files.TEXT_LIMIT)
    assert len(read_text_limited(path)) == files.TEXT_LIMIT  # the default limit
    with path.open("ab") as handle:
        handle.write(b"#")
    with pytest.raises(ConfigError, match=f"rig.toml: larger than the {files.TEXT_LIMIT}-byte limit for a file"):
        read_text_limited(path)
    with pytest.raises(ConfigError, match="larger than the 4194304-byte limit for a rig file"):
        read_text_limited(path, what="rig file")


def test_a_pem_file_is_read_up_to_the_shipped_pem_limit(tmp_path):
    """A certificate with commentary before it (as `openssl x509 -text` writes) up to the limit."""
    pem = CERTIFICATE.read_bytes()
    path = tmp_path / "cert.pem"
    path.write_bytes(b"#" * (files.PEM_LIMIT - len(pem) - 1) + b"\n" + pem)
    assert path.stat().st_size == files.PEM_LIMIT
    assert load_certificate(path).subject is not None
    path.write_bytes(b"#" * (files.PEM_LIMIT - len(pem)) + b"\n" + pem)
    with pytest.raises(ConfigError, match=f"larger than the {files.PEM_LIMIT}-byte limit"):
        load_certificate(path)


def test_a_line_is_read_up_to_the_shipped_line_limit():
    limit = files.LINE_LIMIT
    at_limit = "a" * limit
    lines = list(bounded_lines(io.StringIO(f"{at_limit}\n{at_limit}")))  # the default limit
    assert lines == [f"{at_limit}\n", at_limit]
    with pytest.raises(LineTooLong, match=f"line 2: longer than {limit} characters"):
        list(bounded_lines(io.StringIO(f"short\n{at_limit}a\nnot read\n")))


def test_read_limited_reads_one_byte_past_the_limit_at_most(tmp_path):
    """Whatever the file's size says (a device reports 0), no more than limit + 1 bytes."""
    with pytest.raises(ConfigError, match="larger than the 1024-byte limit for a zero"):
        read_limited("/dev/zero", files.KIB, "zero")
    assert read_limited("/dev/null", 0) == b""


def test_a_fifo_that_never_ends_is_refused_after_limit_and_one_bytes(tmp_path):
    """A FIFO's writer may keep it open for ever: reading stops at limit + 1 bytes, never waits
    for more (or for an end) before refusing it."""
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    held: list[bool] = []  # whether the reader refused it while the writer still held it open

    def writer() -> None:
        with open(fifo, "wb") as handle:
            handle.write(b"x" * (files.KIB + 1))
            handle.flush()
            held.append(done.wait(30))  # held open until the reader has refused it

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConfigError, match=f"fifo: larger than the {files.KIB}-byte limit for a pipe"):
            read_limited(fifo, files.KIB, "pipe")
    finally:
        done.set()
        thread.join(10)
    assert held == [True], "the reader waited for the writer to close the FIFO"


def test_what_cannot_be_read_is_named_with_why(tmp_path):
    with pytest.raises(ConfigError, match=f"^{tmp_path}/missing: No such file or directory$"):
        read_limited(tmp_path / "missing", 10)
    with pytest.raises(ConfigError, match=f"^{tmp_path}: is a directory, not a rig file$"):
        read_text_limited(tmp_path, what="rig file")
    with pytest.raises(ConfigError, match=f"^{tmp_path}: is a directory, not a file$"):
        read_limited(tmp_path, 10)  # what it was to be, unnamed: a file
    (tmp_path / "latin1.toml").write_bytes(b"name = \"caf\xe9\"\n")
    with pytest.raises(ConfigError, match=f"^{tmp_path}/latin1.toml: not UTF-8 text \\(invalid "
                                          f"continuation byte at byte 11\\)$"):
        read_text_limited(tmp_path / "latin1.toml")
