"""The test laboratory's block of a report: who tested, for whom, who signs (a `--lab` file).

A lab file is YAML; every field is optional, and the CLI's `--lab-name` and `--client` options
override the file's names:

    laboratory:
      name: Example Test Laboratory
      address: 1 Test Street, Springfield
      accreditation: ISO/IEC 17025, accreditation no. 0000
    client:
      name: Example Automation
      address: 2 Vendor Road
      contact: qa@example.invalid
    operator: A. Tester               # who ran the test
    signatories:                      # the signature block, in order
      - {role: Tested by, name: A. Tester}
      - {role: Approved by, name: B. Reviewer}
    observations:                     # the lab's remarks, printed under Observations
      - The device was tested with firmware 1.2 as delivered.

The block is stored in results.json as `lab`, so a re-rendered or archived report keeps it.
Errors name the file, the line and the field, like the device profile's.
"""

from __future__ import annotations

from pathlib import Path

from .profile_doc import ProfileDoc, ProfileError, read_list, read_mapping, read_str

PARTY_FIELDS = ("name", "address", "accreditation", "contact")
LAB_FIELDS = ("laboratory", "client", "operator", "signatories", "observations")
EXAMPLE_SIGNATORY = "[{role: Tested by, name: A. Tester}]"

LabError = ProfileError


def load_lab(path: str | Path) -> dict:
    """The lab block of the file at `path`, as plain data for results.json."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), None, "", f"cannot read the lab file: {exc.strerror or exc}") from None
    doc = ProfileDoc(str(path), text)
    return parse_lab(doc)


def parse_lab(doc: ProfileDoc) -> dict:
    data = read_mapping(doc, doc.data, "", LAB_FIELDS)
    lab: dict = {}
    for party in ("laboratory", "client"):
        if party in data:
            fields = read_mapping(doc, data[party], party, PARTY_FIELDS)
            lab[party] = {key: read_str(doc, value, f"{party}.{key}") for key, value in fields.items()}
    if "operator" in data:
        lab["operator"] = read_str(doc, data["operator"], "operator")
    if "signatories" in data:
        signatories = []
        for i, raw in enumerate(read_list(doc, data["signatories"], "signatories", EXAMPLE_SIGNATORY)):
            path = f"signatories[{i}]"
            entry = read_mapping(doc, raw, path, ("role", "name"))
            if "role" not in entry:
                raise doc.error(path, f"a signatory needs a role, e.g. {EXAMPLE_SIGNATORY}")
            signatories.append({key: read_str(doc, value, f"{path}.{key}") for key, value in entry.items()})
        lab["signatories"] = signatories
    if "observations" in data:
        items = read_list(doc, data["observations"], "observations", "[The device was tested as delivered.]")
        lab["observations"] = [read_str(doc, item, f"observations[{i}]") for i, item in enumerate(items)]
    return lab


def with_overrides(lab: dict | None, *, lab_name: str | None = None, client_name: str | None = None) -> dict | None:
    """`lab` with the names given on the command line; None when there is nothing at all."""
    out = {key: (dict(value) if isinstance(value, dict) else value) for key, value in (lab or {}).items()}
    if lab_name:
        out.setdefault("laboratory", {})["name"] = lab_name
    if client_name:
        out.setdefault("client", {})["name"] = client_name
    return out or None
