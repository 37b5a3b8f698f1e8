"""The libmodbus C server as a third-party peer, loaded with a device profile's data.

`start_libmodbus_server(profile)` compiles `libmodbus_server.c` on first use (``cc -O2 ...
$(pkg-config --cflags --libs libmodbus)``) into ``~/.cache/protocol-harness/bin/`` keyed by the
source hash and libmodbus version, writes the profile's tables to a small text data file
(``unit U`` / ``extent T START COUNT`` / ``T ADDRESS VALUE`` lines, T in c d h i), and starts the
server on 127.0.0.1 port 0 (the C side reads the bound port back with getsockname()).

libmodbus has no Read Device Identification (FC43) support, and a libmodbus TCP server answers
every unit id; both are libmodbus as shipped.  If libmodbus-dev is missing, `PeerError` says
``apt-get install -y libmodbus-dev``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .base import DEFAULT_STARTUP_TIMEOUT_S, PeerError, PeerProcess, build_c_program, pkg_config, table_images

SOURCE = Path(__file__).with_name("libmodbus_server.c")
INSTALL_HINT = "install it with `apt-get install -y libmodbus-dev` (scripts/install-system-packages.sh does this)"
_TABLE_LETTER = {"coils": "c", "discrete_inputs": "d", "holding_registers": "h", "input_registers": "i"}


def libmodbus_binary() -> tuple[Path, str]:
    """(path of the compiled server, libmodbus version); compiles once per source/version."""
    version, flags = pkg_config("libmodbus", INSTALL_HINT)
    return build_c_program(SOURCE, "libmodbus_server", flags, key=f"libmodbus-{version}"), version


def write_data_file(profile, path: str | Path) -> None:
    """The profile's unit id, table extents and point values in the C server's text format."""
    lines = [f"unit {profile.modbus.unit_id if profile.modbus else 1}"]
    images = table_images(profile)
    for table, (start, values) in images.items():
        lines.append(f"extent {_TABLE_LETTER[table.value]} {start} {len(values)}")
    for table, (start, values) in images.items():
        letter = _TABLE_LETTER[table.value]
        lines.extend(f"{letter} {start + i} {v}" for i, v in enumerate(values) if v)
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")


def start_libmodbus_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PeerProcess:
    """Start the libmodbus TCP server for `profile_path` (default: the example profile), ready."""
    from ..profile import example_profile_path, load_profile

    profile = load_profile(Path(profile_path) if profile_path else example_profile_path())
    if profile.modbus is None:
        raise PeerError(f"peer 'libmodbus': {profile.source} has no modbus section")
    binary, version = libmodbus_binary()
    fd, data_path = tempfile.mkstemp(prefix="libmodbus-data-", suffix=".txt")
    os.close(fd)
    try:
        write_data_file(profile, data_path)
    except Exception:
        os.unlink(data_path)
        raise
    peer = PeerProcess(
        "libmodbus",
        [str(binary), data_path, host, "0"],
        version=version,
        host=host,
        unit=profile.modbus.unit_id,
        startup_timeout=startup_timeout,
        on_stop=[lambda: os.path.exists(data_path) and os.unlink(data_path)],
    )
    return peer.start()
