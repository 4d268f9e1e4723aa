"""Files a careless or hostile user names: every read is bounded, every write whole or absent.

Each command runs as a real subprocess under an address-space limit, so a command that reads
`/dev/zero` until memory runs out fails here in a second instead of taking the machine with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.files import bounded_lines, read_limited, write_atomic

ROOT = Path(__file__).resolve().parents[2]
KEY = ROOT / "fixtures" / "pki" / "parties" / "supplier-a" / "ds.key"
CERT = ROOT / "fixtures" / "pki" / "parties" / "supplier-a" / "ds.pem"
MEMORY_LIMIT = 1 << 30


# The child limits itself, then runs the bench: a preexec_fn would make Python fork rather than
# vfork, and a fork runs gRPC's fork handlers (loaded in this worker by the labgrid tests) in a
# child that only meant to exec, which they may abort.
LIMITED_BENCH = ("import resource, runpy, sys; "
                 f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT})); "
                 "sys.argv[0] = 'bench'; runpy.run_module('bench', run_name='__main__')")


def bench(*args: str | Path, cwd: Path = ROOT, stdin: int | None = None
          ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIMITED_BENCH, *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=cwd, stdin=stdin,
                          env={**os.environ, "BENCH_LOCAL": "1",
                               "BENCH_RUN_DIR": str(cwd / "no-rig-here")})


def _build(tmp_path: Path, *extra: str | Path) -> list[str | Path]:
    body = tmp_path / "body.bin"
    if not body.exists():
        body.write_bytes(b"\x5a" * 300)
    return ["image", "build", "--manufacturer-image", body, "--manufacturer-code", "0x121D",
            "--image-type", "0", "--file-version", "0x00020000", "--key", KEY, *extra]


ZERO_READS = {
    "image inspect": ("image", "inspect", "/dev/zero"),
    "image inspect --verify-cert": ("image", "inspect", "{image}", "--verify-cert", "/dev/zero"),
    "image build --manufacturer-image": ("image", "build", "--manufacturer-image", "/dev/zero",
                                         "--manufacturer-code", "1", "--image-type", "0",
                                         "--file-version", "1", "--key", KEY, "-o", "{out}"),
    "image build --key": ("image", "build", "--manufacturer-image", "{image}",
                          "--manufacturer-code", "1", "--image-type", "0", "--file-version", "1",
                          "--key", "/dev/zero", "-o", "{out}"),
    "duis parse": ("duis", "parse", "/dev/zero"),
    "duis parse stdin": ("duis", "parse", "-"),
    "duis sign --key": ("duis", "sign", "--key", "/dev/zero", "--cert", CERT, "{image}"),
    "gbcs decode stdin": ("gbcs", "decode", "-"),
    "gbcs decode --verify-cert": ("gbcs", "decode", "DF09", "--verify-cert", "/dev/zero"),
    "gbcs reassemble": ("gbcs", "reassemble", "/dev/zero"),
    "capture decode": ("capture", "decode", "/dev/zero"),
    "update-firmware --xml": ("update-firmware", "--as", "rsa-1", "--xml", "/dev/zero"),
    "update-firmware --image": ("update-firmware", "--as", "rsa-1", "--image", "/dev/zero",
                                "--version", "1", "--devices", "00DB1234567890A0"),
    "gbcs decode --pki": ("gbcs", "decode", "DF09", "--pki", "{zero_pki}"),
    "emulate --identity": ("emulate", "--device", "esme", "--eui", "00DB1234567890A0",
                           "--identity", "{zero_pki}", "--state", "{state}", "--pty"),
    "fuzz --replay": ("fuzz", "--replay", "/dev/zero"),
    "rig check --rig": ("rig", "check", "--rig", "/dev/zero"),
    "run --rig": ("run", "--rig", "/dev/zero", "--out", "{state}"),
}


@pytest.mark.parametrize("case", ZERO_READS, ids=list(ZERO_READS))
def test_dev_zero_is_refused_after_a_bounded_read(case, tmp_path, vectors):
    zero_pki = tmp_path / "pki"
    zero_pki.mkdir()
    (zero_pki / "pki.toml").symlink_to("/dev/zero")  # a PKI directory whose index never ends
    places = {"{image}": vectors / "gfi_esme_ota_image_from_11.1_template.bin",
              "{out}": tmp_path / "out.bin", "{zero_pki}": zero_pki, "{state}": tmp_path / "s"}
    args = [places.get(str(a), a) for a in ZERO_READS[case]]
    with open("/dev/zero", "rb") as zero:
        result = bench(*args, cwd=tmp_path, stdin=zero.fileno())  # an unbounded read times out
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:"), result.stderr
    assert not (tmp_path / "out.bin").exists()


BAD_MANIFESTS = {
    "not TOML": "[[image]\nfile = ",
    "image is not a list": 'image = "x"\n',
    "entry is not a table": "image = [1, 2]\n",
    "entry lacks keys": '[[image]]\nfile = "old.bin"\n',
    "not UTF-8": b"\xff\xfe[[image]]\n",
    "binary": b"\x00" * 64,
}


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=list(BAD_MANIFESTS))
def test_image_build_with_a_bad_manifest_writes_nothing(case, tmp_path):
    manifest = tmp_path / "manifest.toml"
    content = BAD_MANIFESTS[case]
    manifest.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = manifest.read_bytes()
    output = tmp_path / "esme.ota"
    result = bench(*_build(tmp_path, "-o", output, "--manifest", manifest, "--device-type", "ESME",
                           "--signer", "supplier-a"), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not output.exists()
    assert manifest.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("case", ["manifest elsewhere", "manifest is a directory",
                                  "manifest is /dev/zero", "manifest without --signer"])
def test_image_build_failing_after_signing_leaves_no_output(case, tmp_path):
    output = tmp_path / "esme.ota"
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    extra: list[str | Path] = {
        "manifest elsewhere": ["--manifest", elsewhere / "manifest.toml", "--device-type", "ESME",
                               "--signer", "supplier-a"],
        "manifest is a directory": ["--manifest", elsewhere, "--device-type", "ESME",
                                    "--signer", "supplier-a"],
        "manifest is /dev/zero": ["--manifest", "/dev/zero", "--device-type", "ESME",
                                  "--signer", "supplier-a"],
        "manifest without --signer": ["--manifest", tmp_path / "m.toml", "--device-type", "ESME"],
    }[case]
    result = bench(*_build(tmp_path, "-o", output, *extra), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not output.exists()


def test_image_build_replaces_an_existing_output_only_when_it_succeeds(tmp_path):
    output = tmp_path / "esme.ota"
    output.write_bytes(b"previous image")
    failed = bench(*_build(tmp_path, "-o", output, "--header-string", "x" * 33), cwd=tmp_path)
    assert failed.returncode == 2 and output.read_bytes() == b"previous image"
    good = bench(*_build(tmp_path, "-o", output), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert output.read_bytes()[:4] == bytes.fromhex("1EF1EE0B")


def test_registry_import_refuses_an_endless_csv_line(tmp_path, monkeypatch):
    from bench.dcc.records import registry

    monkeypatch.setattr(registry, "CSV_LIMIT", 1024)
    directory = tmp_path / "registry"
    directory.mkdir()
    (directory / "parties.csv").write_text("name,eui,org_role\n" + "x" * 4096)
    with pytest.raises(ConfigError, match="parties.csv: larger than the 1024-byte limit"):
        registry.load_registry_dir(directory)
    (directory / "parties.csv").write_bytes(b"name,eui,org_role\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="parties.csv: not UTF-8"):
        registry.load_registry_dir(directory)


def test_read_limited_refuses_more_than_the_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_limited(path, 10) == b"x" * 10
    with pytest.raises(ConfigError, match="9-byte limit"):
        read_limited(path, 9)
    with pytest.raises(ConfigError, match="is a directory"):
        read_limited(tmp_path, 9)


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old")
    target.chmod(0o640)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    monkeypatch.undo()
    write_atomic(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640
    write_atomic(tmp_path / "key", b"secret", mode=0o600)
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    write_atomic("/dev/null", b"discarded")  # a device is written through, never replaced
    assert Path("/dev/null").is_char_device()


def test_bounded_lines_stop_at_an_endless_line():
    with open("/dev/zero", encoding="latin-1") as zero, pytest.raises(
        ConfigError, match="longer than 1000 characters"
    ):
        list(bounded_lines(zero, 1000))
