"""Serial links through a real lab serial server: Debian's ser2net on 127.0.0.1, serving the
pseudo-terminals of real `bench emulate` meters over RFC 2217 and raw TCP.

What a lab sees: an OTA download and its signed FDRA alert cross the server both ways; a port the
server cannot open, a server that goes away mid-transfer and a refused connection are each one
`LinkError` line naming the URL.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from meter.builders import ESME, SUPPLIER_A, MeterProcess, make_image
from meter.driver import MeterDriver
from needed_tools import require

from bench.codec.gbcs.codes import ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, FDRA_ESME
from bench.codec.gbcs.payloads import decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import verify_signature
from bench.crypto.smki import Pki, init_pki
from bench.errors import LinkError
from bench.link import SerialLink
from bench.testing.serial_server import Ser2net, free_tcp_ports

KINDS = {"rfc2217": True, "socket": False}


@pytest.fixture(scope="module", autouse=True)
def _ser2net_installed() -> None:
    require("ser2net")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def meter(pki: Pki, tmp_path: Path):
    process = MeterProcess(["--device", "esme", "--eui", ESME.hex(), "--identity", str(pki.directory),
                            "--state", str(tmp_path / "state"), "--pty", "--baud", "115200",
                            "--retry-timeout", "0.2"], tmp_path / "state", tmp_path / "emulate.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def serve(tmp_path: Path):
    """Start ser2net serving {name: (device, rfc2217?)}; stopped after the test."""
    servers: list[Ser2net] = []

    def serve(devices: dict[str, tuple[str, bool]]) -> Ser2net:
        server = Ser2net(devices, tmp_path / f"ser2net-{len(servers)}").start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


class WatchedLink:
    """A link that remembers the LinkError it raised (the test-side hub gives up on one quietly)."""

    def __init__(self, link: SerialLink) -> None:
        self.link = link
        self.errors: list[LinkError] = []

    def send(self, frame: bytes) -> None:
        try:
            self.link.send(frame)
        except LinkError as exc:
            self.errors.append(exc)
            raise

    def recv(self, timeout: float) -> bytes | None:
        try:
            return self.link.recv(timeout)
        except LinkError as exc:
            self.errors.append(exc)
            raise

    def close(self) -> None:
        self.link.close()


def one_line_naming(error: BaseException, url: str) -> str:
    text = str(error)
    assert "\n" not in text and url in text, text
    return text


@pytest.mark.parametrize("kind", KINDS)
def test_download_and_alert_cross_the_serial_server(pki, meter, serve, kind):
    server = serve({"esme": (meter.port, KINDS[kind])})
    url = server.url("esme")
    assert url.startswith(f"{kind}://127.0.0.1:")
    driver = MeterDriver(SerialLink(url, 115200), ESME)
    try:
        image = make_image(pki, size=2000)
        driver.offer(image)
        fdra = driver.wait_for(lambda s: [m for m in s.messages if m.message_code == FDRA_ESME], 20)[0]
        assert fdra.originator == ESME and fdra.recipient == SUPPLIER_A
        assert verify_signature(fdra, pki.device(ESME).ds_cert.public_key())
        receipt = decode_payload(fdra)
        assert receipt.alert_code == ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL
        assert receipt.firmware_hash == parse_gb_image(image).manufacturer_image_sha256
        offsets = [r.file_offset for r in driver.seen.block_requests]
        assert offsets == list(range(0, len(image), 48))  # every block once: nothing lost or resent
    finally:
        driver.close()
    state = meter.load_state()
    assert state.pending is not None and state.pending.file_version == 0x200
    assert state.active.file_version != 0x200  # held, never activated


def test_rfc2217_sets_the_line_rate_on_the_server_and_is_not_paced_twice(meter, serve):
    server = serve({"esme": (meter.port, True)})
    with SerialLink(server.url("esme"), 115200) as link:
        assert not link.paced  # an RFC 2217 port is a remote UART: it paces itself
    with SerialLink(server.url("esme"), 115200, pace=True) as link:
        assert link.paced


@pytest.mark.parametrize("kind", KINDS)
def test_a_port_the_server_cannot_open_is_one_link_error(serve, tmp_path, kind):
    server = serve({"gone": (str(tmp_path / "ttyUSB9"), KINDS[kind])})
    url = server.url("gone")
    start = time.monotonic()
    with pytest.raises(LinkError) as caught:
        link = SerialLink(url, 115200)  # raw TCP connects; the server hangs up at once
        try:
            while time.monotonic() - start < 5:
                link.recv(0.5)
        finally:
            link.close()
    text = one_line_naming(caught.value, url)
    assert "Device open failure" in text  # the server's own words


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_connection_is_one_link_error(kind):
    (port,) = free_tcp_ports(1)
    url = f"{kind}://127.0.0.1:{port}"
    with pytest.raises(LinkError) as caught:
        SerialLink(url, 115200)
    assert "refused" in one_line_naming(caught.value, url).lower()


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_that_goes_away_mid_transfer_is_one_link_error(pki, meter, serve, kind):
    server = serve({"esme": (meter.port, KINDS[kind])})
    url = server.url("esme")
    link = WatchedLink(SerialLink(url, 115200))
    driver = MeterDriver(link, ESME)
    try:
        driver.offer(make_image(pki, size=40_000))
        driver.wait_for(lambda s: len(s.block_requests) >= 20, 20)
        server.stop()
        deadline = time.monotonic() + 10
        while not link.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = driver.summary()
        assert len(driver.seen.block_requests) < 800, seen  # stopped mid-transfer
    finally:
        driver.close()
    assert link.errors, f"the link never reported the server going away; saw {seen}"
    text = one_line_naming(link.errors[0], url)
    assert "connection to the serial server lost" in text
