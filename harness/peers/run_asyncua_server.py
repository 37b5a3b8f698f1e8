"""Run a default asyncua OPC UA server for a device image: ``python -m harness.peers.run_asyncua_server IMAGE.json``.

This process stands for "asyncua as a third-party stack": it builds the image's address space
(namespace, one object, its variables and methods, users, security policies, BuildInfo) on an
unmodified `asyncua.Server` and leaves every behaviour at asyncua's defaults, so that what the
harness observes is asyncua as shipped.  The only things set are what any integrator configures:
endpoint URL, application/product URI, server name, BuildInfo, security policies, certificate,
user manager.  One correction of configuration (not behaviour): with ``--port 0`` asyncua stores
the endpoint URL ``...:0/PATH`` before it binds, so once it listens the stored endpoint and
discovery URLs are rewritten with the bound port (what an operator would have configured).

Options: ``--host 127.0.0.1`` (default), ``--port 0`` (default: the OS chooses), ``--cert-dir DIR``
(where the server certificate is generated when the image lists a secured policy; default: a
temporary directory removed on exit).  The certificate is self-signed RSA 2048 / SHA-256 with
SubjectAltName URI = the image's application_uri (plus DNS localhost and the IP of --host),
made with the `cryptography` package.

Prints ``version: X`` and ``listening on opc.tcp://HOST:PORT/PATH`` on stdout, serves until
SIGTERM/SIGINT.  Exit codes: 0 after a signal, 2 for a bad image or arguments, 1 if asyncua
fails to start.  asyncua's `Server.init()` takes about 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import ipaddress
import json
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

STOP_TIMEOUT_S = 2.5

DATA_TYPES = ("Boolean", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double", "String", "Byte", "SByte")


class ImageError(ValueError):
    """The device image is malformed; the message names the field."""


# ---------------------------------------------------------------------- certificate


def make_self_signed_certificate(application_uri: str, cert_path: Path, key_path: Path, *, host: str = "127.0.0.1",
                                 common_name: str = "asyncua peer", days: int = 3650) -> None:
    """Write a self-signed RSA 2048 / SHA-256 certificate (DER) and its key (PEM, unencrypted).

    SubjectAltName: URI = `application_uri` (OPC UA Part 6 §6.2.2 requires it), DNS localhost,
    and the IP of `host` when it is an address.  Key usage as OPC UA application certificates need.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri), x509.DNSName("localhost")]
    try:
        san.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        san.append(x509.DNSName(host))
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                          data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))


# ---------------------------------------------------------------------- image -> asyncua


def security_policy_types(security: list[dict]) -> list:
    """Image ``security`` entries -> `ua.SecurityPolicyType` members, in the image's order.

    Policy names as in the policy URI fragment (``Basic256Sha256``, ``Aes128_Sha256_RsaOaep``);
    asyncua spells them without underscores.
    """
    from asyncua import ua

    out = []
    for entry in security:
        policy = entry.get("policy")
        for mode in entry.get("modes", []):
            name = "NoSecurity" if policy == "None" else f"{str(policy).replace('_', '')}_{mode}"
            if policy == "None" and mode != "None" or policy != "None" and mode == "None":
                raise ImageError(f"security: policy {policy!r} cannot be used with mode {mode!r}")
            member = getattr(ua.SecurityPolicyType, name, None)
            if member is None:
                known = ", ".join(m.name for m in ua.SecurityPolicyType)
                raise ImageError(f"security: asyncua has no policy {policy!r} with mode {mode!r} (it knows {known})")
            if member not in out:
                out.append(member)
    return out


class ImageUserManager:
    """asyncua user manager: anonymous sessions and exactly the image's users (name + password).

    Both get asyncua's `UserRole.User`, as its default `PermissiveUserManager` gives everyone.
    asyncua passes `certificate` = the secure channel's client certificate for anonymous
    sessions too, so "no user name" (anonymous, or an X509 token, which asyncua has already
    verified) is accepted exactly as the default manager would.
    """

    def __init__(self, users: list[dict]):
        self._users = {u["name"]: u["password"] for u in users}

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None:
            return User(role=UserRole.User)
        if username is not None and self._users.get(username, object()) == password:
            return User(role=UserRole.User, name=username)
        return None


def _variant(ua, data_type: str, value, is_array: bool):
    vtype = getattr(ua.VariantType, data_type)
    if is_array:
        return ua.Variant(list(value or []), vtype)
    return ua.Variant(value, vtype)


def _argument(ua, arg: dict):
    a = ua.Argument()
    a.Name = arg["name"]
    a.DataType = ua.NodeId(getattr(ua.ObjectIds, arg["data_type"]))
    a.ValueRank = -1
    a.ArrayDimensions = []
    a.Description = ua.LocalizedText(arg["name"])
    return a


def _method_callback(ua, method: dict):
    outputs = method.get("outputs") or []
    action = method.get("action")

    async def call(parent, *inputs):
        if action == "echo":
            return [ua.Variant(v.Value, getattr(ua.VariantType, o["data_type"])) for o, v in zip(outputs, inputs)]
        if action == "sum":
            out_type = outputs[0]["data_type"]
            total = sum(v.Value for v in inputs)
            if out_type in ("Float", "Double"):
                total = float(total)
            elif out_type == "Boolean":
                total = bool(total)
            elif out_type != "String":
                total = int(total)
            return [ua.Variant(total, getattr(ua.VariantType, out_type))]
        raise ua.UaStatusCodeError(ua.StatusCodes.BadNotImplemented)

    return call


def validate_image(image: dict) -> None:
    for key in ("endpoint_path", "namespace_uri", "object"):
        if image.get(key) is None:
            raise ImageError(f"missing {key!r}")
    for section in ("variables", "methods"):
        for item in image.get(section) or []:
            types = [item.get("data_type")] if section == "variables" else [
                a.get("data_type") for a in (item.get("inputs") or []) + (item.get("outputs") or [])]
            for t in types:
                if t not in DATA_TYPES:
                    raise ImageError(f"{section}: {item.get('browse_name')!r} has data_type {t!r} (one of {', '.join(DATA_TYPES)})")
    for method in image.get("methods") or []:
        if method.get("action") not in ("sum", "echo"):
            raise ImageError(f"methods: {method.get('browse_name')!r} has action {method.get('action')!r} (sum or echo)")
        if method["action"] == "sum" and len(method.get("outputs") or []) != 1:
            raise ImageError(f"methods: {method.get('browse_name')!r}: action sum needs exactly one output")


async def advertise_limits(server, limits: dict) -> None:
    """Configuration, not behaviour: the OperationLimits variables state the claimed values."""
    from asyncua import ua

    names = {
        "max_nodes_per_read": "MaxNodesPerRead", "max_nodes_per_write": "MaxNodesPerWrite",
        "max_nodes_per_browse": "MaxNodesPerBrowse", "max_nodes_per_method_call": "MaxNodesPerMethodCall",
        "max_nodes_per_register_nodes": "MaxNodesPerRegisterNodes",
        "max_nodes_per_translate": "MaxNodesPerTranslateBrowsePathsToNodeIds",
        "max_monitored_items_per_call": "MaxMonitoredItemsPerCall",
    }
    for key, value in limits.items():
        node_id = getattr(ua.ObjectIds, f"Server_ServerCapabilities_OperationLimits_{names[key]}", None)
        if node_id is not None:
            await server.write_attribute_value(ua.NodeId(node_id), ua.DataValue(ua.Variant(int(value), ua.VariantType.UInt32)))


async def build_address_space(server, image: dict) -> int:
    """Namespace, object, variables (+ EngineeringUnits), methods. Returns the namespace index.

    Every node the image names is created before any node whose id asyncua generates (the
    EngineeringUnits and Input/OutputArguments properties): asyncua numbers generated ids from
    the highest numeric id in the namespace at the first generation, so an image id created
    later (``i=1001`` after a generated ``i=1001``) would fail with BadNodeIdExists.  The
    argument properties are therefore added after all methods, built as asyncua's own
    `add_method` builds them.
    """
    from asyncua import ua
    from asyncua.common.manage_nodes import create_property

    idx = await server.register_namespace(image["namespace_uri"])

    def nodeid(text: str):
        return ua.NodeId.from_string(text if text.startswith("ns=") else f"ns={idx};{text}")

    obj_spec = image["object"]
    obj = await server.nodes.objects.add_object(nodeid(obj_spec["node_id"]), ua.QualifiedName(obj_spec["browse_name"], idx))
    units = []
    for v in image.get("variables") or []:
        is_array = v.get("array_length") is not None or isinstance(v.get("value"), list)
        var = await obj.add_variable(nodeid(v["node_id"]), ua.QualifiedName(v["browse_name"], idx),
                                     _variant(ua, v["data_type"], v.get("value"), is_array))
        if is_array:
            length = v.get("array_length") or len(v.get("value") or [])
            await var.write_attribute(ua.AttributeIds.ValueRank, ua.DataValue(ua.Variant(1, ua.VariantType.Int32)))
            await var.write_attribute(ua.AttributeIds.ArrayDimensions,
                                      ua.DataValue(ua.Variant([length], ua.VariantType.UInt32)))
        if v.get("writable"):
            await var.set_writable()
        if v.get("unit"):
            units.append((var, v["unit"]))
    methods = []
    for m in image.get("methods") or []:
        node = await obj.add_method(nodeid(m["node_id"]), ua.QualifiedName(m["browse_name"], idx), _method_callback(ua, m))
        methods.append((node, m))
    # from here on, node ids are generated
    for node, m in methods:
        for name, args in (("InputArguments", m.get("inputs")), ("OutputArguments", m.get("outputs"))):
            if args:
                prop = await create_property(node, ua.NodeId(NamespaceIndex=idx), ua.QualifiedName(name, 0),
                                             [_argument(ua, a) for a in args], varianttype=ua.VariantType.ExtensionObject,
                                             datatype=ua.ObjectIds.Argument)
                await prop.set_modelling_rule(True)
    for var, unit in units:
        eu = ua.EUInformation(
            NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
            UnitId=-1,  # Part 8: no UNECE code given
            DisplayName=ua.LocalizedText(unit),
            Description=ua.LocalizedText(unit),
        )
        await var.add_property(ua.NodeId(NamespaceIndex=idx), ua.QualifiedName("EngineeringUnits", 0),
                               ua.Variant(eu, ua.VariantType.ExtensionObject), datatype=ua.NodeId(ua.ObjectIds.EUInformation))
    return idx


def _build_date(text: str | None) -> _dt.datetime:
    if not text:
        return _dt.datetime.now(_dt.timezone.utc)
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def serve(image: dict, host: str, port: int, cert_dir: Path) -> int:
    from asyncua import Server, __version__ as asyncua_version, ua

    bi = image.get("build_info") or {}
    policies = security_policy_types(image.get("security") or [{"policy": "None", "modes": ["None"]}])
    server = Server(user_manager=ImageUserManager(image.get("users") or []))
    await server.init()
    path = image.get("endpoint_path") or ""
    server.set_endpoint(f"opc.tcp://{host}:{port}{path}")
    server.set_server_name(bi.get("product_name") or "asyncua peer")
    if image.get("application_uri"):
        await server.set_application_uri(image["application_uri"])
    if image.get("product_uri"):
        server.product_uri = image["product_uri"]
    if bi.get("manufacturer_name"):
        server.manufacturer_name = bi["manufacturer_name"]
    await server.set_build_info(
        image.get("product_uri") or server.product_uri,
        bi.get("manufacturer_name") or "",
        bi.get("product_name") or "",
        bi.get("software_version") or "",
        str(bi.get("build_number") or ""),
        _build_date(bi.get("build_date")),
    )
    server.set_security_policy(policies)
    if any(p != ua.SecurityPolicyType.NoSecurity for p in policies):
        cert, key = cert_dir / "server-cert.der", cert_dir / "server-key.pem"
        make_self_signed_certificate(server.get_application_uri(), cert, key, host=host,
                                     common_name=bi.get("product_name") or "asyncua peer")
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
    await build_address_space(server, image)
    await advertise_limits(server, image.get("limits") or {})

    try:
        await server.start()
    except OSError as exc:
        print(f"run_asyncua_server: asyncua could not listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    bound_host, bound_port = server.bserver.hostname, server.bserver.port
    if port == 0:  # see module doc: the stored URLs were made before the bind
        real = f"opc.tcp://{host}:{bound_port}{path}"
        for edp in server.iserver.endpoints:
            edp.EndpointUrl = real
            edp.Server.DiscoveryUrls = [real]
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"version: {asyncua_version}", flush=True)
    print(f"listening on opc.tcp://{bound_host}:{bound_port}{path}", flush=True)
    await stop
    try:
        await asyncio.wait_for(server.stop(), timeout=STOP_TIMEOUT_S)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - exiting anyway
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.peers.run_asyncua_server", description=__doc__.splitlines()[0])
    parser.add_argument("image", help="device image JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = let the OS choose (default)")
    parser.add_argument("--cert-dir", help="where to write the server certificate (default: a temporary directory)")
    args = parser.parse_args(argv)

    try:
        image = json.loads(Path(args.image).read_text(encoding="utf-8"))
        validate_image(image)
    except (OSError, ValueError) as exc:
        print(f"run_asyncua_server: {args.image}: {exc}", file=sys.stderr)
        return 2
    try:
        import asyncua  # noqa: F401
    except ImportError as exc:
        print(f"run_asyncua_server: asyncua is not installed ({exc}); pip install asyncua", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    temp = None
    if args.cert_dir:
        cert_dir = Path(args.cert_dir)
    else:
        temp = tempfile.mkdtemp(prefix="asyncua-peer-")
        cert_dir = Path(temp)
    try:
        return asyncio.run(serve(image, args.host, args.port, cert_dir))
    except ImageError as exc:
        print(f"run_asyncua_server: {args.image}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
