"""The run archive: every run's results.json kept in one SQLite file, and the diff of two runs.

    archive = RunArchive.open()                 # $HARNESS_ARCHIVE or ~/.local/share/protocol-harness/runs.sqlite
    archive.add(results, run_dir)               # at the end of certify / demo / matrix
    archive.list(device="pm100", verdict="NOT_COMPLIANT")

A run is one row of `runs` (what `harness runs list` filters and shows, plus the whole results
document, canonical JSON compressed with zlib) and one row per case in `cases` (for queries
across runs).  Several processes may add runs at once (parallel certify jobs in CI): the file
is in WAL mode, every write is one `BEGIN IMMEDIATE` transaction, and a writer that finds the
file locked waits (busy timeout) and then retries, so no run is lost.

The diff of two runs is `harness.run_diff`.

Standard library only (plus the result model and the canonical form).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from .canonical import canonical_json
from .model import Overall

ARCHIVE_ENV = "HARNESS_ARCHIVE"
SCHEMA_VERSION = 1
# How long one statement waits for another process's write lock, and how long a write keeps
# retrying when SQLite still reports the file locked (e.g. during a WAL checkpoint).
BUSY_TIMEOUT_S = 30.0
RETRY_DEADLINE_S = 120.0
# Level 1: a 3 MB OPC UA results document compresses in ~25 ms instead of ~55 ms at level 6,
# and is only ~40 % larger; `add` runs at the end of every run, so speed wins.
COMPRESSION_LEVEL = 1

T = TypeVar("T")


class ArchiveError(Exception):
    """The archive cannot be used as asked; the message says what to do."""


class RunNotFound(ArchiveError, LookupError):
    """No run, or more than one, matches a run reference."""


def default_archive_path() -> Path:
    """$HARNESS_ARCHIVE if set, else runs.sqlite in the user's data directory (XDG)."""
    explicit = os.environ.get(ARCHIVE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "protocol-harness" / "runs.sqlite"


# --------------------------------------------------------------------------- device identity


@dataclass(frozen=True)
class DeviceIdentity:
    """Who was tested: `label` for people, `key` (no firmware version) to group one device's runs."""

    vendor: str = ""
    product: str = ""
    firmware: str = ""

    @property
    def label(self) -> str:
        return " ".join(part for part in (self.vendor, self.product, self.firmware) if part)

    @property
    def key(self) -> str:
        return " / ".join(" ".join(part.split()).casefold() for part in (self.vendor, self.product) if part)


# (vendor, product names in order of preference, firmware) in each identity source
_DUT_FIELDS = (
    ("VendorName", ("ProductName", "ProductCode"), "MajorMinorRevision"),  # Modbus FC43/14
    ("ManufacturerName", ("ProductName",), "SoftwareVersion"),  # OPC UA BuildInfo
)
_PROFILE_FIELDS = ("vendor_name", ("product_name", "product_code"), "revision")


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value not in (None, "") else ""


def _identity_from(mapping: Any, fields) -> DeviceIdentity | None:
    if not isinstance(mapping, Mapping):
        return None
    vendor_field, product_fields, firmware_field = fields
    vendor = _text(mapping.get(vendor_field))
    product = next((_text(mapping.get(f)) for f in product_fields if _text(mapping.get(f))), "")
    if not (vendor or product):
        return None
    return DeviceIdentity(vendor, product, _text(mapping.get(firmware_field)))


def device_identity(results: Mapping[str, Any]) -> DeviceIdentity:
    """The device a run tested: as it identified itself (results["dut"]), else as its profile says."""
    dut = results.get("dut") or {}
    objects = dut.get("objects") if isinstance(dut, Mapping) else None
    # the field set that finds the most of vendor, product and firmware names the source
    found = [identity for identity in (_identity_from(objects, fields) for fields in _DUT_FIELDS) if identity]
    if found:
        return max(found, key=lambda i: sum(bool(part) for part in (i.vendor, i.product, i.firmware)))
    profile = results.get("profile") or {}
    device = profile.get("device") if isinstance(profile, Mapping) else None
    return _identity_from(device, _PROFILE_FIELDS) or DeviceIdentity()


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class RunSummary:
    """One archived run as `harness runs list` shows it."""

    id: str
    start: str
    end: str
    status: str
    device_label: str
    device_key: str
    firmware: str
    target_url: str
    suites: tuple[str, ...]
    overall: str
    counts: dict[str, int]
    case_count: int
    run_dir: Path | None
    sha256: str


@dataclass(frozen=True)
class StoredRun(RunSummary):
    """An archived run with its whole results document."""

    results: dict = field(default_factory=dict, repr=False)


def suites_of(results: Mapping[str, Any]) -> tuple[str, ...]:
    summary = results.get("summary") or {}
    named = list((summary.get("suites") or {}).keys())
    for case in results.get("cases") or ():
        if case.get("suite") and case["suite"] not in named:
            named.append(case["suite"])
    return tuple(named)


def _timestamp(text: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (naive means UTC, as the harness writes UTC)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _bound(value: date | datetime | str | None, *, end_of_day: bool) -> float | None:
    """A --since/--until bound as epoch seconds.  A date alone covers that whole day; dates and
    times without an offset are local time, as the user typed them."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ArchiveError(f"{text!r} is not a date or time: write it as 2026-11-22 or 2026-11-22T14:30 "
                               "(ISO 8601, optionally with an offset such as +08:00)") from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, dtime.max if end_of_day else dtime.min)
    if value.tzinfo is None:
        value = value.astimezone()  # local time
    return value.timestamp()


def _overall(text: str) -> str:
    """An overall verdict as the user typed it (any case, - or _), or an error listing the choices."""
    name = text.strip().upper().replace("-", "_").replace(" ", "_")
    choices = [o.value for o in Overall]
    if name not in choices:
        raise ArchiveError(f"no overall verdict {text!r}: choose one of {', '.join(choices)}")
    return name


# --------------------------------------------------------------------------- the archive

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    start TEXT NOT NULL,
    end_time TEXT NOT NULL,
    start_ts REAL NOT NULL,
    status TEXT NOT NULL,
    device_label TEXT NOT NULL,
    device_key TEXT NOT NULL,
    firmware TEXT NOT NULL,
    target_url TEXT NOT NULL,
    suites TEXT NOT NULL,          -- JSON list
    overall TEXT NOT NULL,
    counts TEXT NOT NULL,          -- JSON object verdict -> count
    case_count INTEGER NOT NULL,
    run_dir TEXT,
    sha256 TEXT NOT NULL,          -- of the canonical results document
    added_ts REAL NOT NULL,
    document BLOB NOT NULL         -- zlib(canonical JSON of results.json)
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (start_ts);
CREATE INDEX IF NOT EXISTS runs_by_device ON runs (device_key, start_ts);
CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    case_id TEXT NOT NULL,
    suite TEXT NOT NULL,
    verdict TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    requirements TEXT NOT NULL,    -- JSON list
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS cases_by_case ON cases (case_id, verdict);
"""



def _execute_each(conn: sqlite3.Connection, script: str) -> None:
    # not executescript(): it commits first, and a migration must be one transaction
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


# schema version -> what brings an archive of the version before it up to it
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: lambda conn: _execute_each(conn, _SCHEMA),
}

_SUMMARY_COLUMNS = ("id, start, end_time, status, device_label, device_key, firmware, target_url, suites, overall, "
                    "counts, case_count, run_dir, sha256")


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _summary(row: tuple) -> RunSummary:
    (run_id, start, end, status, label, key, firmware, url, suites, overall, counts, case_count, run_dir, sha) = row
    return RunSummary(run_id, start, end, status, label, key, firmware, url, tuple(json.loads(suites)), overall,
                      json.loads(counts), case_count, Path(run_dir) if run_dir else None, sha)


class RunArchive:
    """An open archive file.  Cheap to open; use one per process (or thread-safe within one)."""

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self._conn = connection
        self._lock = threading.Lock()

    # ---- opening

    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = True) -> "RunArchive":
        """The archive at `path` (default: `default_archive_path()`), created with its directories
        unless `create` is false, in which case a missing file is an ArchiveError."""
        path = Path(path).expanduser() if path else default_archive_path()
        if not path.exists():
            if not create:
                raise ArchiveError(f"no run archive at {path}: runs are archived by `harness certify`, `demo` and "
                                   f"`matrix`; point --archive or ${ARCHIVE_ENV} at an existing archive")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ArchiveError(f"cannot create the directory of the run archive {path}: {exc.strerror or exc}; "
                                   f"set ${ARCHIVE_ENV} or --archive to a writable place") from None
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open the run archive {path}: {exc}; set ${ARCHIVE_ENV} or --archive "
                               "to a writable file") from None
        # SQLite's lower() folds ASCII only; device names are often not ASCII
        conn.create_function("casefold", 1, lambda text: text.casefold() if isinstance(text, str) else text,
                             deterministic=True)
        archive = cls(path, conn)
        try:
            archive._retry(archive._prepare)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ArchiveError(f"{path} is not a usable run archive ({exc}); move it away or point "
                               f"--archive / ${ARCHIVE_ENV} at another file") from None
        except ArchiveError:
            conn.close()
            raise
        return archive

    def _prepare(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # WAL + NORMAL: a commit survives the process crashing (not the machine losing power before
        # the next checkpoint); it saves an fsync per run, and closing the archive checkpoints anyway
        conn.execute("PRAGMA synchronous = NORMAL")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: only the first opener switches
        if self._schema_version() == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version()  # again: another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise ArchiveError(f"the run archive {self.path} has schema version {version}, newer than this harness "
                                   f"understands ({SCHEMA_VERSION}): upgrade the harness, or use another --archive")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[target](conn)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _schema_version(self) -> int:
        has_table = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if not has_table:
            return 0
        row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _retry(self, operation: Callable[[], T]) -> T:
        """`operation()`, tried again while SQLite reports the file locked beyond its busy timeout."""
        deadline = time.monotonic() + RETRY_DEADLINE_S
        delay = 0.01
        while True:
            try:
                with self._lock:
                    return operation()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "RunArchive":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- writing

    def add(self, results: Mapping[str, Any], run_dir: Path | str | None = None, *,
            canonical: bytes | None = None) -> str:
        """Store `results` (a results.json document) and return its run id.  Adding a run id
        again replaces that run.  `canonical`: the document's canonical JSON, if the caller
        already has it (saves serialising a large document twice)."""
        run = results.get("run") or {}
        run_id = str(run.get("id") or "")
        if not run_id:
            raise ArchiveError("the results have no run id (results['run']['id']): only results.json documents "
                               "written by the harness can be archived")
        body = canonical if canonical is not None else canonical_json(results)
        sha = hashlib.sha256(body).hexdigest()
        blob = zlib.compress(body, COMPRESSION_LEVEL)
        identity = device_identity(results)
        summary = results.get("summary") or {}
        counts = {str(k): int(v) for k, v in (summary.get("counts") or {}).items()}
        cases = list(results.get("cases") or ())
        added = time.time()
        start_ts = _timestamp(run.get("start")) or _timestamp(run.get("end")) or added
        target = results.get("target") or {}
        run_row = (run_id, str(run.get("start") or ""), str(run.get("end") or ""), start_ts, str(run.get("status") or ""),
                   identity.label, identity.key, identity.firmware, str(target.get("url") or ""),
                   json.dumps(list(suites_of(results))), str(summary.get("overall") or ""), json.dumps(counts),
                   len(cases), str(Path(run_dir).resolve()) if run_dir else None, sha, added, blob)
        case_rows = [(run_id, seq, str(c.get("id", "")), str(c.get("suite", "")), str(c.get("verdict", "")),
                      str(c.get("level", "")), str(c.get("message") or ""), json.dumps(list(c.get("requirements") or ())))
                     for seq, c in enumerate(cases)]

        def write() -> None:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM cases WHERE run_id = ?", (run_id,))
                conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_row)
                conn.executemany("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?)", case_rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        self._retry(write)
        return run_id

    # ---- reading

    def list(self, device: str | None = None, since: date | datetime | str | None = None,
             until: date | datetime | str | None = None, verdict: str | None = None,
             limit: int | None = None) -> list[RunSummary]:
        """Archived runs, newest first.  `device`: case-insensitive part of the device label or
        target URL; `since`/`until`: inclusive bounds on the start (a date covers its whole
        day); `verdict`: the overall verdict, e.g. NOT_COMPLIANT."""
        where, params = [], []
        if device:
            where.append("(instr(casefold(device_label), ?) > 0 OR instr(casefold(target_url), ?) > 0)")
            params += [device.casefold()] * 2
        low, high = _bound(since, end_of_day=False), _bound(until, end_of_day=True)
        if low is not None:
            where.append("start_ts >= ?")
            params.append(low)
        if high is not None:
            where.append("start_ts <= ?")
            params.append(high)
        if verdict:
            where.append("overall = ?")
            params.append(_overall(verdict))
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_ts DESC, added_ts DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_summary(row) for row in self._read(sql, params)]

    def get(self, run_ref: str) -> StoredRun:
        """The run `run_ref` names: a full run id, a unique prefix of one, `latest` or `latest~N`
        (the N-th run before the latest)."""
        run_id = self.resolve(run_ref)
        rows = self._read(f"SELECT {_SUMMARY_COLUMNS}, document FROM runs WHERE id = ?", (run_id,))
        if not rows:  # removed by another process since resolve()
            raise RunNotFound(f"run {run_id} is no longer in {self.path}")
        *columns, blob = rows[0]
        summary = _summary(tuple(columns))
        body = zlib.decompress(blob)
        if hashlib.sha256(body).hexdigest() != summary.sha256:
            raise ArchiveError(f"run {run_id} in {self.path} is damaged (its SHA-256 no longer matches); "
                               "re-add it from its results.json")
        return StoredRun(**{f: getattr(summary, f) for f in summary.__dataclass_fields__}, results=json.loads(body))

    def results(self, run_ref: str) -> dict:
        """The stored results document of the run `run_ref` names (see `get`)."""
        return self.get(run_ref).results

    def resolve(self, run_ref: str) -> str:
        """The full id of the run `run_ref` names, or RunNotFound saying what would match."""
        ref = (run_ref or "").strip()
        if not ref:
            raise RunNotFound("no run given: name a run by its id (or a unique prefix of it), `latest` or `latest~N`")
        if ref == "latest" or ref.startswith("latest~"):
            back_text = ref[len("latest~"):] if "~" in ref else "0"
            if not back_text.isdigit():
                raise RunNotFound(f"{ref!r}: write latest~N with N a number of runs back, e.g. latest~1 for the run before the latest")
            back = int(back_text)
            rows = self._read("SELECT id FROM runs ORDER BY start_ts DESC, added_ts DESC LIMIT 1 OFFSET ?", (back,))
            if rows:
                return rows[0][0]
            total = self._read("SELECT COUNT(*) FROM runs", ())[0][0]
            if not total:
                raise RunNotFound(self._empty_message())
            raise RunNotFound(f"{ref!r}: the archive {self.path} holds only {total} run{'s' if total != 1 else ''}, "
                              f"so the oldest is latest~{total - 1}")
        exact = self._read("SELECT id FROM runs WHERE id = ?", (ref,))
        if exact:
            return ref
        matches = [row[0] for row in self._read(
            "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY start_ts DESC, added_ts DESC LIMIT 11", (len(ref), ref))]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
            raise RunNotFound(f"{ref!r} is the start of several run ids ({shown}): give more of the id")
        recent = [row[0] for row in self._read("SELECT id FROM runs ORDER BY start_ts DESC, added_ts DESC LIMIT 5", ())]
        if not recent:
            raise RunNotFound(self._empty_message())
        raise RunNotFound(f"no run {ref!r} in {self.path}; the most recent are {', '.join(recent)} "
                          "(`harness runs list` shows them all)")

    def case_rows(self, run_ref: str) -> list[dict[str, Any]]:
        """The per-case rows of one run, in run order (without opening its document)."""
        run_id = self.resolve(run_ref)
        rows = self._read("SELECT case_id, suite, verdict, level, message, requirements FROM cases "
                          "WHERE run_id = ? ORDER BY seq", (run_id,))
        return [{"id": cid, "suite": suite, "verdict": verdict, "level": level, "message": message,
                 "requirements": json.loads(reqs)} for cid, suite, verdict, level, message, reqs in rows]

    def _empty_message(self) -> str:
        return (f"the run archive {self.path} holds no runs yet: `harness certify`, `demo` and `matrix` add theirs "
                f"(or point --archive / ${ARCHIVE_ENV} at another archive)")

    def _read(self, sql: str, params: Iterable[Any]) -> list[tuple]:
        params = tuple(params)
        return self._retry(lambda: self._conn.execute(sql, params).fetchall())
