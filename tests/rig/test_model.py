"""Rig files: the shipped rigs load, and every mistake names the file, the device and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.domain import DeviceType, Eui, FaultProfile, Generation
from bench.errors import ConfigError
from bench.rig.model import (
    DEFAULT_RIG,
    PROJECT_ROOT,
    Emulated,
    NoLink,
    SerialUrl,
    UsbRadio,
    load_rig,
    parse_link,
)

MINIMAL = """
pki = "/abs/pki"
[devices.esme]
eui = "00DB1234567890A0"
type = "ESME"
link = "emulated"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rigs" / "r.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_default_rig_has_the_devices_the_suite_needs():
    rig = load_rig()
    assert rig.path == DEFAULT_RIG
    assert rig.pki_dir == PROJECT_ROOT / "fixtures" / "pki"
    assert rig.registry_dir == PROJECT_ROOT / "fixtures" / "registry"
    roles = {d.role: d for d in rig.devices}
    assert roles["esme"].eui_hex == "00DB1234567890A0" and roles["esme"].emulated
    assert roles["gsme"].device_type == "GSME" and roles["gsme"].sleepy
    assert roles["other_esme"].eui_hex == "00DB1234567890B0"
    assert {r for r, d in roles.items() if not d.on_bench} == {"ppmid", "hcalcs",
                                                               "uncommissioned_esme", "smets1_other_esme"}
    assert {r for r, d in roles.items() if d.generation == "SMETS1" and d.emulated} == {"smets1_esme",
                                                                                    "smets1_gsme"}
    assert rig.parties == {"supplier": "supplier-a", "other_supplier": "supplier-b",
                           "rsa": "rsa-1", "other_rsa": "rsa-2"}


@pytest.mark.parametrize("name", ["pi-serial.toml", "lab-rfc2217.toml"])
def test_example_rigs_load(name):
    rig = load_rig(PROJECT_ROOT / "rigs" / name)
    assert all(not d.emulated for d in rig.devices)
    assert rig.device("esme").baud == 115200


def test_relative_paths_resolve_against_the_parent_of_the_rig_directory(tmp_path):
    rig = load_rig(_write(tmp_path, MINIMAL.replace("/abs/pki", "fixtures/pki")))
    assert rig.pki_dir == tmp_path / "fixtures" / "pki"
    rooted = load_rig(_write(tmp_path, 'root = "."\n' + MINIMAL.replace("/abs/pki", "p")))
    assert rooted.pki_dir == tmp_path / "rigs" / "p"


@pytest.mark.parametrize(("snippet", "message"), [
    ('eui = "00DB12"', r"device 'esme': field 'eui': '00DB12' is not an EUI-64"),
    ('type = "TOASTER"', r"device 'esme' \(00DB1234567890A0\): field 'type': 'TOASTER' is not one of"),
    ('link = "http://x"', r"device 'esme' \(00DB1234567890A0\): field 'link': 'http://x' is not"),
    ('baud = -5', r"field 'baud': must be positive"),
    ('baud = "fast"', r"field 'baud': expected int, got 'fast'"),
    ('faults = ["explode"]', r"field 'faults': unknown fault profile 'explode'"),
    ('colour = "red"', r"device 'esme' \(00DB1234567890A0\): field 'colour': unknown field"),
    ('faults = ["activates-on-verify"]', r"field 'faults': unknown fault profile 'activates-on-verify'"),
    ('wake_window_s = 0', r"field 'wake_window_s': must be positive"),
    ('link = "usb-radio:27"', r"field 'link': 2.4 GHz channel 27 is not 11..26"),
    ('poll_interval_s = -1.5', r"field 'poll_interval_s': must be positive"),
    ('query_interval_s = "often"', r"field 'query_interval_s': expected float"),
    ('retry_timeout_s = 0.0', r"field 'retry_timeout_s': must be positive"),
    ('sleepy = "yes"', r"field 'sleepy': expected bool"),
    ('baud = 1.5', r"field 'baud': expected int, got 1.5"),
    ('type = 3', r"device 'esme' \(00DB1234567890A0\): field 'type': expected str, got 3"),
    ('generation = "SMETS3"', r"field 'generation': 'SMETS3' is not one of SMETS1, SMETS2\+"),
    ('supplier = 4', r"field 'supplier': expected str, got 4"),
    ('faults = "accept-any-signer"', r"field 'faults': expected list"),
    ('role = "boss"', r"device 'esme' \(00DB1234567890A0\): field 'role': unknown field \(known: "
                      r"baud, eui, faults, generation, link, "),
    ('link = "none"\nfaults = ["accept-any-signer"]',
     r"field 'faults': fault profiles apply to emulated meters only"),
])
def test_device_errors_name_file_device_and_field(tmp_path, snippet, message):
    key = snippet.split(" = ")[0]
    lines = [line for line in MINIMAL.splitlines() if not line.startswith(key + " =")]
    path = _write(tmp_path, "\n".join(lines) + "\n" + snippet + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_rig(path)
    assert str(info.value).startswith(str(path))


def test_emulator_knobs_reach_the_command_line(tmp_path):
    from bench.rig.emulated_meters import emulate_command

    rig = load_rig()
    gsme = emulate_command(rig.device("gsme"), rig.pki_dir, tmp_path, "supplier-a")
    assert gsme[gsme.index("--device") + 1] == "GSME"
    assert gsme[gsme.index("--poll-interval") + 1] == "0.3"
    assert gsme[gsme.index("--wake-window") + 1] == "0.2"
    assert gsme[gsme.index("--supplier") + 1] == "supplier-a" and "--pty" in gsme
    esme = emulate_command(rig.device("esme"), rig.pki_dir, tmp_path)
    assert "--poll-interval" not in esme and esme[esme.index("--query-interval") + 1] == "0.5"
    faulty = load_rig(_write(tmp_path, MINIMAL + 'faults = ["accept-any-signer"]\n'))
    command = emulate_command(faulty.device("esme"), faulty.pki_dir, tmp_path)
    assert command[command.index("--fault") + 1] == "accept-any-signer"


def test_usb_radio_links_share_a_channel(tmp_path):
    text = MINIMAL.replace('link = "emulated"', 'link = "usb-radio:15"')
    text += '[devices.gsme]\neui = "00DB1234567890A1"\ntype = "GSME"\nlink = "usb-radio:15"\n'
    rig = load_rig(_write(tmp_path, text))
    assert [d.link for d in rig.linked_devices] == [UsbRadio(15), UsbRadio(15)]
    assert str(rig.device("gsme").link) == "usb-radio:15"
    assert str(rig.device("gsme").link) == "usb-radio:15"


@pytest.mark.parametrize(("text", "link"), [
    ("emulated", Emulated()), ("none", NoLink()), ("/dev/ttyUSB0", SerialUrl("/dev/ttyUSB0")),
    ("COM3", SerialUrl("COM3")), ("rfc2217://lab:4001", SerialUrl("rfc2217://lab:4001")),
    ("socket://127.0.0.1:4002", SerialUrl("socket://127.0.0.1:4002")),
    ("usb-radio:11", UsbRadio(11)), ("usb-radio:26", UsbRadio(26)),
])
def test_a_link_is_its_kind_and_prints_as_the_rig_file_wrote_it(text, link):
    assert parse_link(text) == link and str(link) == text


@pytest.mark.parametrize("text", ["usb-radio:10", "usb-radio:x", "http://x", "rfc2217://", "tty0"])
def test_a_link_that_is_none_of_the_kinds_is_refused(text):
    with pytest.raises(ValueError, match="is not"):
        parse_link(text)


def test_device_words_are_the_domain_enums(tmp_path):
    rig = load_rig(_write(tmp_path, MINIMAL + 'faults = ["accept-any-signer"]\n'))
    esme = rig.device("esme")
    assert esme.device_type is DeviceType.ESME and esme.generation is Generation.SMETS2_PLUS
    assert esme.faults == (FaultProfile.ACCEPT_ANY_SIGNER,) and esme.link == Emulated()
    assert load_rig().device("ppmid").link == NoLink()


def test_emulating_a_ppmid_is_refused(tmp_path):
    path = _write(tmp_path, MINIMAL.replace('"ESME"', '"PPMID"'))
    with pytest.raises(ConfigError, match="only ESME and GSME can be emulated"):
        load_rig(path)


def test_duplicate_eui_names_both_devices(tmp_path):
    text = MINIMAL + MINIMAL.split("\n", 2)[2].replace("devices.esme", "devices.twin")
    with pytest.raises(ConfigError, match=r"'eui': 00DB1234567890A0 is also device 'esme'"):
        load_rig(_write(tmp_path, text))


@pytest.mark.parametrize(("text", "message"), [
    (MINIMAL + "[options]\nblock_size_cap = 0\n", r"options: field 'block_size_cap': must be positive"),
    (MINIMAL + "[options]\nblock_size_cap = 300\n", r"'block_size_cap': must be 1..255"),
    (MINIMAL + "[options]\ntimeout = 3\n", r"options: field 'timeout': unknown field"),
    (MINIMAL + "[options]\nshim_workers = -1\n", r"'shim_workers': expected a count >= 0 or 'auto'"),
    (MINIMAL + '[options]\nshim_workers = "many"\n', r"'shim_workers': expected a count >= 0"),
    (MINIMAL + "[options]\nshim_workers = 1.5\n", r"'shim_workers': expected int or str"),
    (MINIMAL + '[parties]\nboss = "x"\n', r"parties: field 'boss': unknown field"),
    ('pki = "x"\n', r"rig: field 'devices': a rig needs at least one device or a \[fleet\]"),
    ("devices = 3\n", r"rig: field 'devices': expected dict"),
    ("this is = not toml [", r"not valid TOML"),
    ("devices = {}\n", r"rig: field 'devices': a rig needs at least one device"),
    ("name = 3\n" + MINIMAL, r"rig: field 'name': expected str, got 3"),
    ("images = 3\n" + MINIMAL, r"rig: field 'images': expected dict, got 3"),
    (MINIMAL + "[images]\nsize = 1.5\n", r"images: field 'size': expected int, got 1.5"),
    (MINIMAL + "[options]\nstall_timeout_s = 'x'\n", r"options: field 'stall_timeout_s': expected float"),
    (MINIMAL + "[parties]\nrsa = 3\n", r"parties: field 'rsa': expected str, got 3"),
    ("[devices]\nesme = 3\n", r"device 'esme': expected a table \[devices.esme\]$"),
    ('[devices.Esme]\neui = "00DB1234567890A0"\ntype = "ESME"\n',
     r"device 'Esme': role names are lower_snake_case words$"),
    ('[devices.esme]\neui = "00DB1234567890A0"\n', r"device 'esme' \(00DB1234567890A0\): field 'type': is required"),
])
def test_rig_level_errors(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_rig(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("line", "workers"), [
    ("", None), ('shim_workers = "auto"', None), ("shim_workers = 0", 0), ("shim_workers = 3", 3),
])
def test_shim_workers_option(tmp_path, line, workers):
    """None is one worker per core; 0 decides DUIS requests in the rig's own process."""
    rig = load_rig(_write(tmp_path, MINIMAL + f"[options]\n{line}\n"))
    assert rig.options.shim_workers == workers


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: rig file not found"):
        load_rig(tmp_path / "nope.toml")


def test_lookup_by_role_and_eui():
    rig = load_rig()
    assert rig.device("gsme").eui == bytes.fromhex("00DB1234567890A1")
    assert rig.device_by_eui(bytes.fromhex("00DB1234567890B0")).role == "other_esme"
    with pytest.raises(ConfigError, match="no device with role 'toaster'"):
        rig.device("toaster")


def test_image_spec_defaults_and_errors(tmp_path):
    assert load_rig().images.manufacturer_code == 0x121D
    spec = load_rig(_write(tmp_path, MINIMAL + "[images]\nmanufacturer_code = 0x1234\nsize = 4096\n")).images
    assert (spec.manufacturer_code, spec.size, spec.gsme_image_type) == (0x1234, 4096, 1)
    with pytest.raises(ConfigError, match=r"images: field 'manufacturer_code': 65536 outside"):
        load_rig(_write(tmp_path, MINIMAL + "[images]\nmanufacturer_code = 0x10000\n"))
    with pytest.raises(ConfigError, match=r"images: field 'min_hardware_version': above max"):
        load_rig(_write(tmp_path, MINIMAL + "[images]\nmin_hardware_version = 9\n"
                        "max_hardware_version = 8\n"))


def test_rig_check_cli(tmp_path):
    import json
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "bench", "rig", "check", "--json"],
                        capture_output=True, text=True, cwd=PROJECT_ROOT, check=False, timeout=60)
    assert ok.returncode == 0, ok.stderr
    checked = json.loads(ok.stdout)
    assert checked["rig"] == "emulated" and len(checked["devices"]) == 9
    bad = _write(tmp_path, MINIMAL.replace("emulated", "telepathy"))
    refused = subprocess.run([sys.executable, "-m", "bench", "rig", "check", "--rig", str(bad)],
                             capture_output=True, text=True, check=False, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "field 'link': 'telepathy'" in refused.stderr


def test_session_versions_increase_with_time_unless_fixed(tmp_path):
    auto = load_rig(_write(tmp_path, MINIMAL)).images
    assert auto.first_version is None
    earlier, later = auto.session_first_version(1_800_000_000), auto.session_first_version(1_800_000_060)
    assert later == earlier + 0x100 and 0x10000000 <= earlier <= 0xFFFFFFFF - 0x100
    assert load_rig().images.session_first_version(1_800_000_000) == 0x00030000


def test_a_file_number_is_never_taken_from_a_string_and_an_integer_is_a_float(tmp_path):
    """TOML types are kept: "5" is not a count, but 5 is 5.0 seconds."""
    with pytest.raises(ConfigError, match=r"field 'baud': expected int, got '5'"):
        load_rig(_write(tmp_path, MINIMAL + 'baud = "5"\n'))
    rig = load_rig(_write(tmp_path, MINIMAL + "poll_interval_s = 2\n[options]\nstall_timeout_s = 7\n"))
    assert rig.device("esme").poll_interval_s == 2.0 and isinstance(rig.device("esme").poll_interval_s, float)
    assert rig.options.stall_timeout_s == 7.0 and isinstance(rig.options.stall_timeout_s, float)


def test_the_typed_classes_refuse_what_the_file_would(tmp_path):
    """Built in code, a device is checked as one read from a file: the validators are the classes'."""
    import attrs

    from bench.rig.model import RigDevice, RigOptions
    from bench.rig.schema import FieldError

    esme = load_rig(_write(tmp_path, MINIMAL)).device("esme")
    assert isinstance(esme.eui, Eui) and esme.eui_hex == "00DB1234567890A0"
    with pytest.raises(FieldError, match="must be positive, got -1"):
        attrs.evolve(esme, baud=-1)
    with pytest.raises(FieldError, match="only ESME and GSME can be emulated"):
        RigDevice(role="ppmid", eui=b"\x00" * 8, device_type=DeviceType.PPMID, link=Emulated())
    with pytest.raises(FieldError, match="must be 1..255 bytes"):
        RigOptions(block_size_cap=256)
    gsme = RigDevice(role="gsme", eui=bytes.fromhex("00DB1234567890A1"), device_type=DeviceType.GSME)
    assert gsme.sleepy and isinstance(gsme.eui, Eui)  # a GSME sleeps unless told otherwise
