#!/usr/bin/env bash
# Installs the JavaScript stacks the harness runs as peers (node-opcua, pinned in package.json and
# package-lock.json) into <project>/node_modules with `npm ci`, only when node_modules is missing
# or older than package-lock.json.  Installs Debian's nodejs + npm first if `node` is missing
# (needs root; node-opcua 2.182 needs Node >= 18, newer node-opcua lines need Node >= 22.13).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "node is not installed; run as root or: sudo apt-get install -y nodejs npm" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed; run: sudo apt-get install -y npm" >&2
    exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "node $(node --version) is too old for node-opcua 2.182 (needs >= 18)" >&2
    exit 1
fi

# node_modules/.package-lock.json is written by npm at the end of every install: its age is
# the age of the installation.
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! package-lock.json -nt "$stamp" ] && [ ! package.json -nt "$stamp" ]; then
    exit 0
fi
# npm ci removes node_modules first, so an interrupted install is redone on the next run.
timeout 900 npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
