"""Requirement catalogues: each suite's `requirements.toml` (standard library only).

A catalogue maps a requirement id to the document, version, clause, level and a one-line
summary in our own words:

    [requirements."MBAP-TID-ECHO"]
    document = "MODBUS Messaging on TCP/IP Implementation Guide"
    version = "V1.0b"
    clause = "3.1.3"
    level = "MUST"
    summary = "The server copies the transaction identifier of the request into the response."

An interoperability scenario's entry may add `server_cases` (the server suite's cases that
check the same exchange) and `client_requirements` (the client-side suite's requirements it
depends on).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .model import Level


@dataclass(frozen=True)
class Requirement:
    id: str
    document: str
    version: str
    clause: str
    level: Level
    summary: str
    conformance_unit: str = ""  # OPC UA: the Part 7 conformance unit the requirement belongs to
    # Interoperability scenarios: the cases of the server suite and the requirements of the
    # client-side suite whose verdicts tell which side broke a failing cell
    # (harness/matrix_attribution.py).
    server_cases: tuple[str, ...] = ()
    client_requirements: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        return f"{self.document} {self.version} §{self.clause}"


@dataclass(frozen=True)
class ServerProfile:
    """A claimed profile (OPC UA Part 7): its title and every conformance unit it includes."""

    name: str
    title: str
    clause: str
    units: frozenset[str]


@dataclass(frozen=True)
class Catalogue:
    suite: str
    source: Path
    sha256: str
    requirements: dict[str, Requirement]
    profiles: dict[str, ServerProfile] = field(default_factory=dict)
    protocol: str = ""  # the protocol the suite speaks ("modbus", "opcua"), for runs without a target

    def __getitem__(self, rid: str) -> Requirement:
        return self.requirements[rid]

    def __contains__(self, rid: str) -> bool:
        return rid in self.requirements


class CatalogueError(ValueError):
    pass


def load_catalogue(path: str | Path, suite: str | None = None) -> Catalogue:
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    reqs: dict[str, Requirement] = {}
    for rid, entry in data.get("requirements", {}).items():
        missing = {"document", "version", "clause", "level", "summary"} - set(entry)
        if missing:
            raise CatalogueError(f"{path}: requirement {rid} lacks {', '.join(sorted(missing))}")
        try:
            level = Level(entry["level"])
        except ValueError:
            raise CatalogueError(f"{path}: requirement {rid}: level must be MUST, SHOULD or MAY") from None
        reqs[rid] = Requirement(rid, entry["document"], entry["version"], str(entry["clause"]), level, entry["summary"],
                                entry.get("conformance_unit", ""), tuple(entry.get("server_cases", ())),
                                tuple(entry.get("client_requirements", ())))
    return Catalogue(suite or data.get("suite", path.parent.name), path, hashlib.sha256(raw).hexdigest(), reqs,
                     _profiles(path, data.get("profiles", {})), str(data.get("protocol", "")))


def _profiles(path: Path, table: dict) -> dict[str, ServerProfile]:
    """[profiles.NAME] tables, each unit list widened by the profile it `includes`."""
    resolved: dict[str, ServerProfile] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> ServerProfile:
        if name in resolved:
            return resolved[name]
        if name not in table:
            raise CatalogueError(f"{path}: profile {seen[-1] if seen else name} includes unknown profile {name}")
        if name in seen:
            raise CatalogueError(f"{path}: profiles include each other: {' -> '.join(seen + (name,))}")
        entry = table[name]
        units = set(entry.get("units", []))
        if "includes" in entry:
            units |= resolve(entry["includes"], seen + (name,)).units
        resolved[name] = ServerProfile(name, entry.get("title", name), entry.get("clause", ""), frozenset(units))
        return resolved[name]

    for name in table:
        resolve(name)
    return resolved


def suite_catalogue(suite: str) -> Catalogue:
    """The catalogue shipped with a bundled suite, e.g. suite_catalogue("modbus")."""
    return load_catalogue(Path(__file__).resolve().parent.parent / "conformance_suites" / suite / "requirements.toml", suite)
