"""The OPC UA section of a device profile: claims (PICS), identity and test parameters (PIXIT).

    opcua:
      profile: micro                      # Part 7 2017 server profile: nano | micro | embedded
      conformance_units: [Method Call]    # further units the device claims beyond the profile
      security:                           # policies and modes the endpoints offer
        - {policy: None, modes: [None]}
        - {policy: Basic256Sha256, modes: [Sign, SignAndEncrypt]}
      user_tokens: [anonymous, username]
      limits: {max_nodes_per_read: 100}   # OperationLimits the server advertises and honours
      application_uri: urn:example:pm100  # identity, for BuildInfo and the certificate
      endpoint_path: /pm100               # test parameters
      namespace: urn:example:pm100:data
      object: {name: PowerMeter}          # the Objects-folder object holding the points
      users: [{name: operator, password_env: PM100_PASSWORD}]
      methods: [{name: Add, inputs: [{name: a, type: Double}], outputs: [...], action: sum}]

Point node ids, engineering units and scales live on the points themselves (`harness.profile`).
Node ids are written without a namespace index: they are in the `namespace` URI, whose index
the server assigns and the harness reads from the NamespaceArray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .profile_doc import ProfileDoc, read_choice, read_int, read_list, read_mapping, read_str

SERVER_PROFILES = ("nano", "micro", "embedded")
PROFILE_TITLES = {
    "nano": "Nano Embedded Device 2017 Server Profile",
    "micro": "Micro Embedded Device 2017 Server Profile",
    "embedded": "Embedded 2017 UA Server Profile",
}
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
USER_TOKENS = ("anonymous", "username")
DATA_TYPES = ("Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double", "String")
METHOD_ACTIONS = ("sum", "echo")
POLICY_URI_PREFIX = "http://opcfoundation.org/UA/SecurityPolicy#"

# OperationLimits and service limits the device claims (Part 5 ServerCapabilities), with the
# values a device that claims nothing is taken to have.
LIMIT_DEFAULTS = {
    "max_nodes_per_read": 100,
    "max_nodes_per_write": 100,
    "max_nodes_per_browse": 100,
    "max_nodes_per_method_call": 10,
    "max_nodes_per_register_nodes": 100,
    "max_nodes_per_translate": 100,
    "max_monitored_items_per_call": 100,
    "max_sessions": 10,
    "max_subscriptions_per_session": 2,
    "max_browse_continuation_points": 5,
    "min_publishing_interval_ms": 50,
    "min_sampling_interval_ms": 10,
    "max_session_timeout_ms": 3_600_000,
}

# Modbus point type -> the OPC UA built-in type of its engineering value (unscaled points)
POINT_TYPE_TO_UA = {
    "bool": "Boolean",
    "int16": "Int16",
    "uint16": "UInt16",
    "int32": "Int32",
    "uint32": "UInt32",
    "float32": "Float",
    "float64": "Double",
    "string": "String",
}


@dataclass(frozen=True)
class SecurityClaim:
    policy: str
    modes: tuple[str, ...]

    @property
    def policy_uri(self) -> str:
        return POLICY_URI_PREFIX + self.policy


@dataclass(frozen=True)
class Argument:
    name: str
    data_type: str


@dataclass(frozen=True)
class MethodDef:
    name: str
    node_id: str
    inputs: tuple[Argument, ...]
    outputs: tuple[Argument, ...]
    action: str
    example_inputs: tuple = ()
    example_outputs: tuple = ()


@dataclass(frozen=True)
class UserCredential:
    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class OpcuaSection:
    server_profile: str
    conformance_units: tuple[str, ...]
    security: tuple[SecurityClaim, ...]
    user_tokens: tuple[str, ...]
    limits: dict[str, int]
    application_uri: str
    product_uri: str
    build_number: str
    build_date: str
    endpoint_path: str
    namespace: str
    object_name: str
    object_node_id: str
    users: tuple[UserCredential, ...]
    methods: tuple[MethodDef, ...]
    response_timeout_s: float

    def claims_policy(self, policy: str, mode: str | None = None) -> bool:
        for claim in self.security:
            if claim.policy == policy and (mode is None or mode in claim.modes):
                return True
        return False

    def secure_claims(self) -> list[tuple[str, str]]:
        """(policy, mode) pairs other than None/None."""
        return [(c.policy, m) for c in self.security for m in c.modes if c.policy != "None"]


def point_ua_type(point) -> str:
    """The OPC UA built-in type of a point's engineering value: Double once scaled."""
    return "Double" if point.scale is not None else POINT_TYPE_TO_UA[point.type]


def default_node_id(object_name: str, point_name: str) -> str:
    return f"s={object_name}.{point_name}"


def _arguments(doc: ProfileDoc, value, path: str) -> tuple[Argument, ...]:
    args = []
    for i, raw in enumerate(read_list(doc, value, path, "[{name: a, type: Double}]")):
        a = read_mapping(doc, raw, f"{path}[{i}]", ("name", "type"))
        if "name" not in a or "type" not in a:
            raise doc.error(f"{path}[{i}]", "an argument needs name and type, e.g. {name: a, type: Double}")
        args.append(Argument(read_str(doc, a["name"], f"{path}[{i}].name"), read_choice(doc, a["type"], f"{path}[{i}].type", DATA_TYPES)))
    return tuple(args)


def _methods(doc: ProfileDoc, value, object_name: str) -> tuple[MethodDef, ...]:
    methods = []
    names: set[str] = set()
    for i, raw in enumerate(read_list(doc, value, "opcua.methods", "[{name: Add, inputs: [...], outputs: [...], action: sum}]")):
        path = f"opcua.methods[{i}]"
        m = read_mapping(doc, raw, path, ("name", "node_id", "inputs", "outputs", "action", "example"))
        if "name" not in m:
            raise doc.error(path, "a method needs a name")
        name = read_str(doc, m["name"], f"{path}.name")
        if name in names:
            raise doc.error(f"{path}.name", f"method name {name!r} is used twice")
        names.add(name)
        inputs = _arguments(doc, m.get("inputs", []), f"{path}.inputs")
        outputs = _arguments(doc, m.get("outputs", []), f"{path}.outputs")
        action = read_choice(doc, m.get("action", "echo"), f"{path}.action", METHOD_ACTIONS)
        if action == "echo" and [a.data_type for a in inputs] != [a.data_type for a in outputs]:
            raise doc.error(f"{path}.outputs", "an echo method returns its inputs: give it outputs of the same types")
        if action == "sum" and (len(outputs) != 1 or not inputs):
            raise doc.error(f"{path}.outputs", "a sum method takes one or more inputs and has exactly one output")
        ex_in: tuple = ()
        ex_out: tuple = ()
        if "example" in m:
            ex = read_mapping(doc, m["example"], f"{path}.example", ("inputs", "outputs"))
            ex_in = tuple(read_list(doc, ex.get("inputs", []), f"{path}.example.inputs", "[1.5, 2.25]"))
            ex_out = tuple(read_list(doc, ex.get("outputs", []), f"{path}.example.outputs", "[3.75]"))
            if len(ex_in) != len(inputs) or len(ex_out) != len(outputs):
                raise doc.error(f"{path}.example", f"the example needs {len(inputs)} inputs and {len(outputs)} outputs")
        node_id = read_str(doc, m.get("node_id", default_node_id(object_name, name)), f"{path}.node_id")
        methods.append(MethodDef(name, node_id, inputs, outputs, action, ex_in, ex_out))
    return tuple(methods)


def _users(doc: ProfileDoc, value) -> tuple[UserCredential, ...]:
    users = []
    for i, raw in enumerate(read_list(doc, value, "opcua.users", "[{name: operator, password_env: PM100_PASSWORD}]")):
        path = f"opcua.users[{i}]"
        u = read_mapping(doc, raw, path, ("name", "password", "password_env"))
        if "name" not in u:
            raise doc.error(path, "a user needs a name")
        if "password_env" in u:
            var = read_str(doc, u["password_env"], f"{path}.password_env")
            password = os.environ.get(var)
            if password is None:
                raise doc.error(f"{path}.password_env", f"environment variable {var} is not set; export it or give password: instead")
        elif "password" in u:
            password = read_str(doc, u["password"], f"{path}.password")
        else:
            raise doc.error(path, "give the user a password or password_env (the name of an environment variable)")
        users.append(UserCredential(read_str(doc, u["name"], f"{path}.name"), password))
    return tuple(users)


def _security(doc: ProfileDoc, value) -> tuple[SecurityClaim, ...]:
    claims = []
    for i, raw in enumerate(read_list(doc, value, "opcua.security", "[{policy: None, modes: [None]}]")):
        path = f"opcua.security[{i}]"
        c = read_mapping(doc, raw, path, ("policy", "modes"))
        policy = read_choice(doc, str(c.get("policy")), f"{path}.policy", SECURITY_POLICIES)
        modes = tuple(read_choice(doc, str(m), f"{path}.modes[{j}]", SECURITY_MODES) for j, m in enumerate(read_list(doc, c.get("modes"), f"{path}.modes", "[Sign, SignAndEncrypt]")))
        if (policy == "None") != (modes == ("None",)):
            raise doc.error(f"{path}.modes", "policy None goes with mode None only, and every other policy with Sign and/or SignAndEncrypt")
        claims.append(SecurityClaim(policy, modes))
    if not claims:
        raise doc.error("opcua.security", "claim at least one security policy")
    return tuple(claims)


def parse_opcua_section(doc: ProfileDoc, value, device: dict[str, str]) -> OpcuaSection:
    path = "opcua"
    m = read_mapping(
        doc, value, path,
        ("profile", "conformance_units", "security", "user_tokens", "limits", "application_uri", "product_uri", "build_number",
         "build_date", "endpoint_path", "namespace", "object", "users", "methods", "response_timeout_ms"),
    )
    server_profile = read_choice(doc, m.get("profile", "nano"), f"{path}.profile", SERVER_PROFILES)
    units = tuple(read_str(doc, u, f"{path}.conformance_units[{i}]") for i, u in enumerate(read_list(doc, m.get("conformance_units", []), f"{path}.conformance_units", "[Method Call]")))
    tokens = tuple(read_choice(doc, t, f"{path}.user_tokens[{i}]", USER_TOKENS) for i, t in enumerate(read_list(doc, m.get("user_tokens", ["anonymous"]), f"{path}.user_tokens", "[anonymous, username]")))
    limits = dict(LIMIT_DEFAULTS)
    for key, val in read_mapping(doc, m.get("limits", {}), f"{path}.limits", tuple(LIMIT_DEFAULTS)).items():
        limits[key] = read_int(doc, val, f"{path}.limits.{key}", 0, 2**31 - 1)
    obj = read_mapping(doc, m.get("object", {}), f"{path}.object", ("name", "node_id"))
    object_name = read_str(doc, obj.get("name", "Device"), f"{path}.object.name")
    endpoint_path = read_str(doc, m.get("endpoint_path", ""), f"{path}.endpoint_path")
    if endpoint_path and not endpoint_path.startswith("/"):
        raise doc.error(f"{path}.endpoint_path", f"expected a path starting with '/', e.g. /pm100, got {endpoint_path!r}")
    if "application_uri" not in m:
        raise doc.error(path, "name the server's applicationUri (application_uri: urn:...), as its certificate and FindServers state it")
    namespace = read_str(doc, m.get("namespace", ""), f"{path}.namespace")
    if not namespace:
        raise doc.error(f"{path}.namespace", "name the device's namespace URI, e.g. urn:example:pm100:data")
    users = _users(doc, m.get("users", []))
    if "username" in tokens and not users:
        raise doc.error(f"{path}.users", "the device claims username tokens: list at least one test user")
    timeout_ms = read_int(doc, m.get("response_timeout_ms", 2000), f"{path}.response_timeout_ms", 1, 600_000)
    return OpcuaSection(
        server_profile=server_profile,
        conformance_units=units,
        security=_security(doc, m.get("security", [{"policy": "None", "modes": ["None"]}])),
        user_tokens=tokens,
        limits=limits,
        application_uri=read_str(doc, m["application_uri"], f"{path}.application_uri"),
        product_uri=read_str(doc, m.get("product_uri", device.get("vendor_url", "")), f"{path}.product_uri"),
        build_number=read_str(doc, m.get("build_number", "0"), f"{path}.build_number"),
        build_date=read_str(doc, m.get("build_date", "2000-01-01"), f"{path}.build_date"),
        endpoint_path=endpoint_path,
        namespace=namespace,
        object_name=object_name,
        object_node_id=read_str(doc, obj.get("node_id", f"s={object_name}"), f"{path}.object.node_id"),
        users=users,
        methods=_methods(doc, m.get("methods", []), object_name),
        response_timeout_s=timeout_ms / 1000.0,
    )


def opcua_summary(section: OpcuaSection) -> tuple[dict, dict]:
    """(claims, parameters) blocks for results.json; passwords are never included."""
    claims = {
        "profile": section.server_profile,
        "profile_title": PROFILE_TITLES[section.server_profile],
        "conformance_units": list(section.conformance_units),
        "security": [{"policy": c.policy, "modes": list(c.modes)} for c in section.security],
        "user_tokens": list(section.user_tokens),
        "limits": dict(section.limits),
    }
    parameters = {
        "endpoint_path": section.endpoint_path,
        "namespace": section.namespace,
        "object": section.object_name,
        "users": [u.name for u in section.users],
        "methods": [m.name for m in section.methods],
        "response_timeout_ms": round(section.response_timeout_s * 1000),
    }
    return claims, parameters
