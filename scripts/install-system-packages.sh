#!/usr/bin/env bash
# Installs the Debian packages the harness uses, only those not already present.
#   tshark        reads the capture.pcap the harness writes (tests decode it as Modbus/TCP)
#   libmodbus-dev the C Modbus stack: benchmark reference server and the libmodbus peer
#   gcc           compiles that reference server
#   chromium      the headless browser of `harness report --pdf` and the browser tests (driven by Playwright)
#   fonts-noto-cjk Chinese glyphs for the zh-CN report, on screen and in the PDF
set -euo pipefail
wanted=(tshark libmodbus-dev gcc chromium fonts-noto-cjk)
missing=()
for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
