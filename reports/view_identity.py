"""The device under test as the profile declares it and as it described itself on the wire
(Modbus FC43/14 objects, OPC UA BuildInfo), side by side, with the fields that differ."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .i18n import N_
from .view_cases import Gettext, text

# Profile fields, Modbus object names and OPC UA BuildInfo fields that mean the same thing.
_ALIASES = {"majorminorrevision": "revision", "softwareversion": "revision", "manufacturername": "vendorname"}
_LABELS = {
    "vendorname": N_("Vendor name"),
    "productcode": N_("Product code"),
    "revision": N_("Revision / firmware"),
    "vendorurl": N_("Vendor URL"),
    "productname": N_("Product name"),
    "modelname": N_("Model name"),
    "userapplicationname": N_("User application name"),
    "applicationuri": N_("Application URI"),
    "applicationname": N_("Application name"),
    "producturi": N_("Product URI"),
    "buildnumber": N_("Build number"),
    "builddate": N_("Build date"),
}


@dataclass(frozen=True, slots=True)
class IdentityRow:
    key: str  # normalised field name
    label: str
    declared: str
    read: str
    mismatch: bool


def _norm(key: str) -> str:
    k = re.sub(r"[^a-z0-9]", "", key.lower())
    return _ALIASES.get(k, k)


def identity_rows(declared: Mapping[str, Any], read: Mapping[str, Any], _: Gettext) -> list[IdentityRow]:
    labels: dict[str, str] = {}
    for key in list(declared) + list(read):
        n = _norm(str(key))
        labels.setdefault(n, _(_LABELS[n]) if n in _LABELS else str(key))
    by_declared = {_norm(str(k)): text(v) for k, v in declared.items()}
    by_read = {_norm(str(k)): text(v) for k, v in read.items()}
    rows = []
    for n, label in labels.items():
        d, r = by_declared.get(n, ""), by_read.get(n, "")
        rows.append(IdentityRow(n, label, d, r, bool(d and r and d.strip() != r.strip())))
    return rows


def identity_value(rows: list[IdentityRow], *keys: str) -> str:
    """The first of `keys` that has a value, read from the device before declared."""
    for key in keys:
        for row in rows:
            if row.key == key and (row.read or row.declared):
                return row.read or row.declared
    return ""
