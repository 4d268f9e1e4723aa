#!/usr/bin/env bash
# Install the bench on a Raspberry Pi and run one emulated meter on its UART (/dev/serial0).
#
#   sudo scripts/pi/install.sh --identity fixtures/pki [--device esme|gsme] [--eui EUI]
#                              [--baud 115200] [--port /dev/serial0] [--options "--fault ..."]
#
# Wiring to the bench: Pi GPIO14 (TXD, pin 8) -> bench RX, GPIO15 (RXD, pin 10) -> bench TX,
# GND (pin 6) -> GND; 3.3 V logic. Re-running the script updates the install and keeps the meter state.
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/../.." && pwd)"
IDENTITY=""
DEVICE="esme"
EUI=""
BAUD="115200"
PORT="/dev/serial0"
OPTIONS=""

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --identity) IDENTITY="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --eui) EUI="$2"; shift 2 ;;
        --baud) BAUD="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --options) OPTIONS="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 2; }
[ -n "$IDENTITY" ] && [ -f "$IDENTITY/pki.toml" ] || { echo "--identity must be a PKI directory (pki.toml)" >&2; exit 2; }
case "$DEVICE" in
    esme) EUI="${EUI:-00DB1234567890A0}" ;;
    gsme) EUI="${EUI:-00DB1234567890A1}" ;;
    *) echo "--device must be esme or gsme" >&2; exit 2 ;;
esac

echo "== packages"
apt-get update -q
apt-get install -y -q --no-install-recommends python3 python3-venv python3-pip

echo "== UART: hardware on, login console off"
if command -v raspi-config >/dev/null 2>&1; then
    raspi-config nonint do_serial_hw 0
    raspi-config nonint do_serial_cons 1
else
    echo "raspi-config not found: enable_uart=1 in config.txt and remove console=serial0 from cmdline.txt by hand"
fi

echo "== user and files"
id bench >/dev/null 2>&1 || useradd --system --home-dir /var/lib/bench --shell /usr/sbin/nologin bench
usermod -a -G dialout bench
install -d -m 0755 /opt/bench /etc/bench
rm -rf /opt/bench/src
cp -a "$SOURCE" /opt/bench/src
rm -rf /opt/bench/src/.venv /opt/bench/src/.git
python3 -m venv /opt/bench/venv
/opt/bench/venv/bin/pip install --quiet --upgrade pip
/opt/bench/venv/bin/pip install --quiet /opt/bench/src
# the meter's own keys and the public certificates only: no party private key leaves the bench
EUI_DIR="$(echo "$EUI" | tr -d ':-' | tr '[:lower:]' '[:upper:]')"
[ -d "$IDENTITY/devices/$EUI_DIR" ] || { echo "no device $EUI_DIR in $IDENTITY" >&2; exit 2; }
rm -rf /etc/bench/identity
install -d -m 0750 -o bench -g bench /etc/bench/identity /etc/bench/identity/ca /etc/bench/identity/devices
install -m 0644 "$IDENTITY/pki.toml" /etc/bench/identity/pki.toml
install -m 0644 "$IDENTITY/ca/cert.pem" /etc/bench/identity/ca/cert.pem
for party in "$IDENTITY"/parties/*/; do
    name="$(basename "$party")"
    install -d /etc/bench/identity/parties/"$name"
    install -m 0644 "$party/ds.pem" "$party/ka.pem" /etc/bench/identity/parties/"$name"/
done
cp -a "$IDENTITY/devices/$EUI_DIR" /etc/bench/identity/devices/
chown -R bench:bench /etc/bench/identity
chmod 0600 /etc/bench/identity/devices/"$EUI_DIR"/*.key

cat > /etc/bench/emulate.env <<ENV
BENCH_DEVICE=$DEVICE
BENCH_EUI=$EUI
BENCH_IDENTITY=/etc/bench/identity
BENCH_PORT=$PORT
BENCH_BAUD=$BAUD
BENCH_OPTIONS=$OPTIONS
ENV

echo "== service"
install -m 0644 "$SOURCE/scripts/pi/bench-emulate.service" /etc/systemd/system/bench-emulate.service
systemctl daemon-reload
systemctl enable bench-emulate.service
systemctl restart bench-emulate.service || true
echo "installed: $DEVICE $EUI on $PORT at $BAUD baud."
echo "A reboot may be needed the first time for the UART settings; then: journalctl -u bench-emulate -f"
