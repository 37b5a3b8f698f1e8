"""The OPC UA face of a simulated device: an `asyncua.Server` behind our conformance layer.

`OpcuaSimulator(profile, model)` serves the profile's OPC UA section:

- the device object with a variable per point and the methods (`device_nodes`), values from
  the shared `DeviceModel` (a Modbus write shows here, and in subscriptions, at once);
- ServerStatus/BuildInfo from the profile's identity, OperationLimits from its claims;
- the claimed security policies and modes, with an application certificate generated on first
  start into the per-user PKI directory (`harness.certs`), client certificates checked against
  a trust list (by default the harness's own client certificate);
- anonymous and user-name tokens as claimed, users and passwords from the profile;
- the UACP checks (`uacp_guard`) and the service checks (`services`) a plain asyncua server
  lacks, and a fast start from the cached standard address space (`aspace_cache`).

It binds `host:port` (127.0.0.1 and an OS-picked port by default) and advertises the port it
really got in its endpoint URLs.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Server, ua
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.binary_server_asyncio import BinaryServer
from asyncua.server.user_managers import UserManager

from harness.certs import HARNESS_CLIENT_NAME, default_cert_dir, ensure_certificate, harness_client_certificate, load_key
from harness.codec.opcua import uacp
from harness.profile import Profile

from ..device_model import DeviceModel
from . import aspace_cache
from .client_faults import ClientFaults, FaultyGuard, FaultyProcessor
from .faults import hang_fault_ms, lose_writes_every, parse_opcua_faults
from .hang_fault import hanging_guard
from .lose_writes_fault import LosingWrites
from .device_nodes import DeviceNodes, build_device_nodes, ua_value
from .services import ConformantProcessor, DeviceContext
from .uacp_guard import GuardedProtocol

log = logging.getLogger("simulators.opcua")

_POLICY_TYPES = {
    ("None", "None"): ua.SecurityPolicyType.NoSecurity,
    ("Basic256Sha256", "Sign"): ua.SecurityPolicyType.Basic256Sha256_Sign,
    ("Basic256Sha256", "SignAndEncrypt"): ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ("Aes128_Sha256_RsaOaep", "Sign"): ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"): ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    ("Aes256_Sha256_RsaPss", "Sign"): ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ("Aes256_Sha256_RsaPss", "SignAndEncrypt"): ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}
_LIMIT_NODES = {
    "max_nodes_per_read": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    "max_nodes_per_write": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
    "max_nodes_per_browse": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse,
    "max_nodes_per_method_call": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerMethodCall,
    "max_nodes_per_register_nodes": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRegisterNodes,
    "max_nodes_per_translate": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
    "max_monitored_items_per_call": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
}


class ProfileUsers(UserManager):
    """Exactly the profile's users, each with its password; anonymous when claimed."""

    def __init__(self, passwords: dict[str, str], anonymous: bool):
        self.passwords = passwords
        self.anonymous = anonymous

    def get_user(self, iserver, username=None, password=None, certificate=None):
        # asyncua passes the secure channel's client certificate here for every token type,
        # so an anonymous token is recognised by the missing user name (X509 user tokens are
        # not offered: the token type is refused before this is called).
        if username is None:
            return User(role=UserRole.User) if self.anonymous else None
        if username is not None and self.passwords.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class _Processor(ConformantProcessor):
    """The service layer plus the client-certificate trust check at OpenSecureChannel."""

    trusted: frozenset[bytes] = frozenset()

    def open_secure_channel(self, algohdr, seqhdr, body):
        certificate = algohdr.SenderCertificate
        if certificate and not self._connection.is_open() and bytes(certificate) not in self.trusted:
            # Part 6 v1.05 §6.7.4: certificate problems at OpenSecureChannel are reported as
            # Bad_SecurityChecksFailed (no detail to an unauthenticated peer), then close.
            log.info("refusing OpenSecureChannel from %s: client certificate not trusted", self.name)
            self._transport.write(uacp.encode(uacp.ErrorMessage(int(ua.StatusCodes.BadSecurityChecksFailed), "certificate not trusted")))
            self._transport.close()
            return
        super().open_secure_channel(algohdr, seqhdr, body)


class _BinaryServer(BinaryServer):
    protocol_class: type = GuardedProtocol

    def _make_protocol(self):
        protocol = self.protocol_class(iserver=self.iserver, policies=self._policies, clients=self.clients,
                                       closing_tasks=self.closing_tasks, limits=self.limits)
        protocol.processor_class = self.processor_class
        protocol.faults = self.processor_class.faults
        return protocol


class _Server(Server):
    """asyncua's Server with our binary server (guarded protocol, conformant processor)."""

    processor_class: type = _Processor
    protocol_class: type = GuardedProtocol

    async def start(self) -> None:
        await self._setup_server_nodes()
        await self.iserver.start()
        host, port = self._get_bind_socket_info()
        self.bserver = _BinaryServer(self.iserver, host, port, self.limits)
        self.bserver.processor_class = self.processor_class
        self.bserver.protocol_class = self.protocol_class
        self.bserver.set_policies(self._policies)
        try:
            await self.bserver.start()
        except Exception:
            await self.iserver.stop()
            raise


class OpcuaSimulator:
    def __init__(self, profile: Profile, model: DeviceModel, host: str = "127.0.0.1", port: int = 0,
                 cert_dir: Path | None = None, trusted_certificates: list[Path] | None = None, faults=()):
        if profile.opcua is None:
            raise ValueError(f"{profile.source}: the profile has no opcua section to simulate")
        self.profile = profile
        self.section = profile.opcua
        self.model = model
        self.host = host
        self.port = port
        self.cert_dir = Path(cert_dir) if cert_dir else default_cert_dir()
        self.trusted_certificates = trusted_certificates
        self.faults = parse_opcua_faults(faults)
        self.client_faults = ClientFaults.of(self.faults)  # None: the classes below stay the plain ones
        self.server: _Server | None = None
        self.nodes: DeviceNodes | None = None
        self.used_cache = False

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.section.endpoint_path}"

    async def start(self) -> None:
        section = self.section
        server = _Server(user_manager=ProfileUsers({u.name: u.password for u in section.users}, "anonymous" in section.user_tokens))
        iserver = server.iserver

        async def standard_space(_shelf=None):
            self.used_cache = await aspace_cache.load_standard_address_space(iserver)

        iserver.load_standard_address_space = standard_space  # type: ignore[method-assign]
        iserver.min_session_timeout_ms = 1000  # asyncua's default floor is 5 s
        iserver.max_session_timeout_ms = section.limits["max_session_timeout_ms"]
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}{section.endpoint_path}")
        server.set_server_name(self.profile.device.get("product_name") or self.profile.name)
        await server.set_application_uri(section.application_uri)
        server.product_uri = section.product_uri
        tokens = []
        if "anonymous" in section.user_tokens:
            tokens.append(ua.AnonymousIdentityToken)
        if "username" in section.user_tokens:
            tokens.append(ua.UserNameIdentityToken)
        server.set_identity_tokens(tokens)
        server.set_security_policy([_POLICY_TYPES[(c.policy, m)] for c in section.security for m in c.modes])
        if section.secure_claims():
            pair = ensure_certificate(self.cert_dir, _cert_name(section.application_uri), section.application_uri)
            await server.load_certificate(str(pair.cert_path))
            server.iserver.private_key = load_key(pair.key_path)  # asyncua's loader re-validates: +70 ms
        await self._identity(server)
        values = {p.name: self.model.value(p.name) for p in self.profile.points}
        self.nodes = await build_device_nodes(server, self.profile, values)
        every = lose_writes_every(self.faults)
        # the Write service's model: with ua-lose-writes one that drops acknowledged writes
        # (simulators/opcua/lose_writes_fault.py); otherwise the device model itself
        model = self.model if every is None else LosingWrites(self.model, every)
        attributes = {"device": DeviceContext(section, self.nodes, model), "trusted": self._trusted(), "faults": self.faults}
        if self.client_faults is None:
            server.processor_class = type("DeviceProcessor", (_Processor,), attributes)
        else:  # simulators/opcua/client_faults.py: misbehaviour for testing clients
            attributes["client_faults"] = self.client_faults
            server.processor_class = type("FaultyDeviceProcessor", (FaultyProcessor, _Processor), attributes)
            server.protocol_class = type("FaultyDeviceGuard", (FaultyGuard,), {"client_faults": self.client_faults})
        hang_ms = hang_fault_ms(self.faults)
        if hang_ms is not None:  # a robustness defect (simulators/opcua/hang_fault.py)
            server.protocol_class = hanging_guard(server.protocol_class, hang_ms)
        self.model.subscribe(self._show_change)
        await server.start()
        self.port = server.bserver.port
        self._advertise_bound_port(server)
        self.server = server
        log.info("opcua simulator for %s listening on %s (address-space cache %s)", self.profile.name, self.url,
                 "used" if self.used_cache else "built")

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop()

    async def __aenter__(self) -> OpcuaSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals

    def _trusted(self) -> frozenset[bytes]:
        paths = self.trusted_certificates
        if paths is None:  # the certificate the suite presents (made here if it does not exist yet)
            existing = default_cert_dir() / f"{HARNESS_CLIENT_NAME}.der"
            paths = [existing if existing.is_file() else harness_client_certificate().cert_path]
        return frozenset(_der(Path(p)) for p in paths)

    async def _identity(self, server: Server) -> None:
        device, section = self.profile.device, self.section
        try:
            build_date = datetime.fromisoformat(section.build_date).replace(tzinfo=timezone.utc)
        except ValueError:
            build_date = datetime(2000, 1, 1, tzinfo=timezone.utc)
        await server.set_build_info(section.product_uri, device.get("vendor_name", ""), device.get("product_name", ""),
                                    device.get("revision", ""), section.build_number, build_date)
        for name, object_id in _LIMIT_NODES.items():
            await server.write_attribute_value(ua.NodeId(object_id), ua.DataValue(ua.Variant(section.limits[name], ua.VariantType.UInt32)))
        await server.write_attribute_value(ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_MinSupportedSampleRate),
                                           ua.DataValue(ua.Variant(float(section.limits["min_sampling_interval_ms"]), ua.VariantType.Double)))
        # Part 5 v1.04 §6.3.2: MaxBrowseContinuationPoints is a UInt16, unlike the OperationLimits
        await server.write_attribute_value(ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_MaxBrowseContinuationPoints),
                                           ua.DataValue(ua.Variant(section.limits["max_browse_continuation_points"], ua.VariantType.UInt16)))

    def _show_change(self, name: str, value) -> None:
        """A point changed (through any face): the variable shows it, subscriptions report it.

        Called synchronously from the Modbus engine or the Write service, so the new value is
        stored at once (a Read right after the write sees it) and asyncua's data-change
        callbacks, which are coroutines, run as tasks on the same loop.
        """
        if self.server is None or self.nodes is None:
            return
        now = datetime.now(timezone.utc)
        data = ua.DataValue(ua_value(self.model.points[name], value), SourceTimestamp=now, ServerTimestamp=now)
        attribute = self.server.iserver.aspace[self.nodes.point_ids[name]].attributes[ua.AttributeIds.Value]
        attribute.value = data
        attribute.value_callback = None
        loop = asyncio.get_running_loop()
        for handle, callback in list(attribute.datachange_callbacks.items()):
            loop.create_task(callback(handle, data))

    def _advertise_bound_port(self, server: Server) -> None:
        """Endpoints were made with the requested port (maybe 0): put the real one in."""
        old, new = server.endpoint.geturl(), self.url
        server.endpoint = urlparse(new)
        for endpoint in server.iserver.endpoints:
            if endpoint.EndpointUrl == old:
                endpoint.EndpointUrl = new
            endpoint.Server.DiscoveryUrls = [new if u == old else u for u in endpoint.Server.DiscoveryUrls]


def _cert_name(application_uri: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in application_uri)
    return f"server-{safe}"[:100]


def _der(path: Path) -> bytes:
    """A certificate file (DER or PEM) as DER bytes, the form OpenSecureChannel carries."""
    data = path.read_bytes()
    if data.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data
