#!/usr/bin/env bash
# Re-extracts the reports' msgids and merges them into each language's catalogue; then fill in
# the new msgstr entries (tests/reports/test_i18n.py fails while one is empty).
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=${PYBABEL:-.venv/bin/pybabel}
pot=$(mktemp --suffix=.pot)
trap 'rm -f "$pot"' EXIT
"$PYBABEL" -q extract -F reports/babel.cfg -k N_ --no-location --sort-output -o "$pot" . >/dev/null
for po in reports/locale/*/LC_MESSAGES/messages.po; do
    locale=$(basename "$(dirname "$(dirname "$po")")")
    "$PYBABEL" -q update --no-fuzzy-matching --omit-header -l "$locale" -i "$pot" -o "$po" >/dev/null
done
