#!/usr/bin/env node
/*
 * Bridge from the protocol harness (Python) to node-opcua's OPC UA client (OPCUAClient).
 *
 *   node harness/adapters/node_opcua_bridge.js node-opcua [--node-modules DIR]
 *
 * One long-lived process per client adapter (harness/adapters/node_opcua_client.py starts it
 * through harness.adapters.node_bridge.NodeBridge): the same line-delimited JSON protocol as
 * node_bridge.js.
 *
 *   request  {"id": N, "op": "read", "args": {"node_id": "ns=2;s=PowerMeter.voltage_l1"}}
 *   reply    {"id": N, "ok": true, "result": {"value": 230.5, "type_name": "Float"}}
 *            {"id": N, "ok": false, "error": {"kind": K, "message": "...", "code": C, "status": NAME}}
 *
 * kind is one of status (the server answered with a bad StatusCode: code = its value, status =
 * its name), timeout, connect, closed, bad_request (an argument node-opcua refused before
 * sending anything: malformed node id, a value that does not fit its type), unsupported, other.
 *
 * Ops: hello; prepare_pki {pki_dir}; connect {url, policy, mode, user, password, certificate,
 * private_key, pki_dir, timeout_ms}; close; browse {node_id}; read {node_id}; write {node_id, value, type_name};
 * call {object_id, method_id, args: [[value, type_name], ...]}; subscribe {node_id, interval_ms}
 * -> handle; next_change {handle, timeout_ms}; unsubscribe {handle}; time {op, args, n} runs an
 * op n times inside node and reports the elapsed time (the reference for the bridge's cost).
 * Requests run one after the other in arrival order; a line that is not a request gets an error
 * reply, never a crash.  stdout carries ONLY reply lines: console.* and node-opcua's own logging
 * go to stderr (redirected before node-opcua is loaded: it logs while loading).  stdin closing
 * (the parent went away) closes the session and the channel, bounded, and ends the process.
 *
 * read, each output argument of call and each data change of next_change come back as
 * {value, type_name} (the Variant's built-in type: JSON writes a Double 50.0 as 50).
 * Values on the wire are JSON; what JSON cannot carry is tagged: {"$int": "decimal"} (Int64,
 * UInt64), {"$float": "nan"|"inf"|"-inf"|"-0"}, {"$b64": ...} (ByteString), {"$date": ISO-8601}
 * (DateTime), {"$json": ...} (an ExtensionObject, as node-opcua's toJSON()).  NodeId values
 * are strings, LocalizedText its text, QualifiedName "ns:name" ("name" in namespace 0),
 * StatusCode its name.
 *
 * The client (node-opcua 2.182): OPCUAClient.create with endpointMustExist false,
 * connectionStrategy maxRetry 0 (one attempt: the harness decides about retries),
 * defaultTransactionTimeout and transportTimeout = the adapter's timeout (node-opcua floors a
 * request timeout at ClientSecureChannelLayer.minTransactionTimeout, 5 s, which is lowered to
 * the adapter's timeout; transportTimeout is also the socket's idle timeout, raised to
 * node-opcua's default 60 s once connected: see relaxIdleTimeout), requestedSessionTimeout
 * 60 s, keepSessionAlive false.  Its certificate store is an OPCUACertificateManager rooted in
 * pki_dir (a temporary directory the Python side makes and removes) that accepts any server
 * certificate (automaticallyAcceptUnknownCertificate: the harness judges servers, it does not
 * guard against them).  With a certificate and key given, they are certificateFile and
 * privateKeyFile, the key is also copied into the store (own/private/private_key.pem: otherwise
 * the store makes a fresh RSA key first, ~0.6 s) and applicationUri is read from the
 * certificate's subjectAltName; without one node-opcua makes a self-signed certificate of its own
 * in the store (~0.7 s alone, several seconds while node-opcua's load-time key generation still
 * runs or the machine is busy).  The op prepare_pki {pki_dir} makes that certificate ahead, under
 * a watchdog of its own, so the connect's watchdog bounds the exchange with the server only.
 *
 * Every library call is raced against a watchdog (timeout + 1 s) and against the loss of the
 * connection (node-opcua's "connection_lost" event: it would otherwise queue the request for a
 * reconnection that the harness does not want), so no reply is ever missing.
 */
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const util = require("node:util");
const { BridgeError, quietConsole, serve, withWatchdog } = require("./bridge_protocol.js");

// stdout is the protocol channel: everything else goes to stderr, from before node-opcua loads.
quietConsole();

const STACK = "node-opcua";
const APPLICATION_NAME = "protocol-harness-node-opcua";
const PREPARE_PKI_WATCHDOG_MS = 120000; // RSA key generation on a busy machine; the Python side waits as long
const WATCHDOG_MARGIN_MS = 1000;
const SESSION_TIMEOUT_MS = 60000;
const IDLE_TIMEOUT_MS = 60000; // node-opcua's own default transportTimeout (ClientSecureChannelLayer)
const DEFAULT_MIN_TRANSACTION_TIMEOUT_MS = 5000; // ClientSecureChannelLayer.minTransactionTimeout in 2.182
const MONITORED_QUEUE_SIZE = 10;
const MAX_BROWSE_NEXT = 1000;

function die(message) {
    process.stderr.write(`node_opcua_bridge: ${message}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const args = { stack: null, nodeModules: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--node-modules") {
            if (i + 1 >= argv.length) die("--node-modules needs a value");
            args.nodeModules = path.resolve(argv[++i]);
        } else if (a.startsWith("--")) die(`unknown option ${a}`);
        else if (args.stack === null) args.stack = a;
        else die(`unexpected argument ${a}`);
    }
    if (args.stack !== STACK) die(`usage: node node_opcua_bridge.js ${STACK} [--node-modules DIR]`);
    return args;
}

// ---------------------------------------------------------------------------- errors

function describe(err) {
    if (err === null || err === undefined) return String(err);
    if (typeof err !== "object") return String(err);
    const parts = [];
    if (err.name && err.name !== "Error") parts.push(err.name);
    if (err.code && typeof err.code === "string") parts.push(err.code);
    if (err.message) parts.push(err.message.trim());
    return parts.join(": ") || util.inspect(err, { depth: 1 });
}

// transportTimeout bounds the wait for the Acknowledge while connecting (so a server that never
// acknowledges fails the connect within the adapter's timeout), but node-opcua also makes it the
// socket's idle timeout: a connection on which nothing arrives for that long is closed.  Left at
// the adapter's timeout, every request that timed out, and every pause longer than the timeout,
// would cost the connection.  Once connected, the idle timeout is node-opcua's default again.
function relaxIdleTimeout(client) {
    try {
        const channel = client._secureChannel;
        const transport = channel && typeof channel.getTransport === "function" ? channel.getTransport() : null;
        const socket = transport && transport._socket;
        if (socket && typeof socket.setTimeout === "function") socket.setTimeout(IDLE_TIMEOUT_MS);
    } catch (err) {
        process.stderr.write(`node_opcua_bridge: cannot relax the socket idle timeout: ${describe(err)}\n`);
    }
}

// The server's status behind a node-opcua error: a StatusCode on the error (OpenSecureChannel
// refused), the ServiceFault the channel put on err.response, or "BadXxx (0x8...)" in the text
// (what node-opcua writes for a status, e.g. a monitored item it could not create).
function statusOf(err) {
    if (!err || typeof err !== "object") return null;
    const candidates = [err.statusCode, err.response && err.response.responseHeader && err.response.responseHeader.serviceResult];
    for (const sc of candidates) {
        if (sc && typeof sc.value === "number" && typeof sc.name === "string" && sc.value !== 0) {
            return { name: sc.name, value: sc.value >>> 0 };
        }
    }
    const m = /\b(Bad[A-Za-z0-9_]+) \(0x([0-9a-fA-F]{8})\)/.exec(String(err.message || ""));
    return m ? { name: m[1], value: parseInt(m[2], 16) >>> 0 } : null;
}

function statusError(sc, operation, extra) {
    const name = sc.name || `Bad_0x${(sc.value >>> 0).toString(16).padStart(8, "0")}`;
    const text = `${operation}: ${name} (0x${(sc.value >>> 0).toString(16).padStart(8, "0").toUpperCase()})` + (extra ? ` ${extra}` : "");
    return new BridgeError("status", text, sc.value >>> 0, name);
}

function mapError(err, operation) {
    if (err instanceof BridgeError) return err;
    const sc = statusOf(err);
    if (sc) return statusError(sc, operation, `(${describe(err)})`);
    const message = describe(err);
    if (/Transaction has timed out|timeout/i.test(message)) return new BridgeError("timeout", `${operation}: ${message}`);
    if (/BadConnectionClosed|BadSecureChannelClosed|Invalid Channel|premature disconnection|ECONNRESET|EPIPE|socket has been disconnected|has been closed/i.test(message)) {
        return new BridgeError("closed", `${operation}: ${message}`);
    }
    return new BridgeError("other", `${operation}: ${message}`);
}

// "ns=0;i=85" -> "i=85", as asyncua writes it (Part 6 v1.04 §5.3.1.10 omits ns=0)
function nodeIdText(nodeId) {
    const text = nodeId.toString();
    return text.startsWith("ns=0;") ? text.slice(5) : text;
}

function str(args, name) {
    const v = args[name];
    if (typeof v !== "string") throw new BridgeError("bad_request", `argument ${name} must be a string, got ${JSON.stringify(v)}`);
    return v;
}

function num(args, name) {
    const v = args[name];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new BridgeError("bad_request", `argument ${name} must be a number, got ${JSON.stringify(v)}`);
    return v;
}

// ---------------------------------------------------------------------------- the stack

class NodeOpcuaStack {
    constructor(nodeModules) {
        const entry = (name) => (nodeModules ? path.join(nodeModules, name) : name);
        this.lib = require(entry("node-opcua-client"));
        this.crypto = require(entry("node-opcua-crypto"));
        this.OPCUACertificateManager = require(entry("node-opcua-certificate-manager")).OPCUACertificateManager;
        let manifest;
        try {
            manifest = require(entry(path.join("node-opcua", "package.json")));
        } catch (_err) {
            manifest = require(entry(path.join("node-opcua-client", "package.json")));
        }
        this.version = manifest.version;
        this.client = null;
        this.session = null;
        this.timeoutMs = 5000;
        this.subs = new Map(); // handle -> {subscription, item, queue: [], waiter}
        this.nextHandle = 0;
        this.lost = null; // a BridgeError once the connection is gone
        this.onLost = null; // rejects the op in flight when the connection goes
    }

    // ------------------------------------------------------------------ values
    nodeId(text) {
        try {
            return this.lib.coerceNodeId(text);
        } catch (err) {
            throw new BridgeError("bad_request", `not an OPC UA node id: ${JSON.stringify(text)} (${describe(err)})`);
        }
    }

    scalarToWire(x, typeName) {
        if (x === null || x === undefined) return null;
        switch (typeName) {
            case "Int64":
            case "UInt64": {
                if (!Array.isArray(x)) return typeof x === "number" ? x : { $int: String(x) };
                const u = (BigInt(x[0] >>> 0) << 32n) | BigInt(x[1] >>> 0);
                return { $int: String(typeName === "Int64" ? BigInt.asIntN(64, u) : u) };
            }
            case "Float":
            case "Double":
                if (Number.isNaN(x)) return { $float: "nan" };
                if (x === Infinity) return { $float: "inf" };
                if (x === -Infinity) return { $float: "-inf" };
                if (Object.is(x, -0)) return { $float: "-0" }; // JSON.stringify(-0) is "0"
                return x;
            case "ByteString":
                return { $b64: Buffer.from(x).toString("base64") };
            case "DateTime":
                return x instanceof Date && !Number.isNaN(x.getTime()) ? { $date: x.toISOString() } : null;
            case "NodeId":
            case "ExpandedNodeId":
                return nodeIdText(x);
            case "StatusCode":
                return x.name;
            case "QualifiedName":
                return x.namespaceIndex ? `${x.namespaceIndex}:${x.name}` : x.name;
            case "LocalizedText":
                return x.text === undefined ? null : x.text;
            case "Guid":
                return String(x);
            case "ExtensionObject":
            case "DataValue":
            case "Variant":
            case "DiagnosticInfo":
                return { $json: typeof x.toJSON === "function" ? x.toJSON() : JSON.parse(JSON.stringify(x)) };
            default:
                return x;
        }
    }

    variantToWire(variant) {
        const { DataType, VariantArrayType } = this.lib;
        if (!variant) return { value: null, type_name: "Null" };
        const typeName = DataType[variant.dataType] || `DataType${variant.dataType}`;
        let value;
        if (variant.arrayType === VariantArrayType.Scalar || variant.arrayType === undefined) {
            value = this.scalarToWire(variant.value, typeName);
        } else {
            value = variant.value === null || variant.value === undefined ? null : Array.from(variant.value, (x) => this.scalarToWire(x, typeName));
        }
        return { value, type_name: typeName };
    }

    scalarFromWire(x, typeName) {
        if (x !== null && typeof x === "object" && !Array.isArray(x)) {
            if ("$b64" in x) return Buffer.from(String(x.$b64), "base64");
            if ("$date" in x) return new Date(String(x.$date));
            if ("$float" in x) return { nan: NaN, inf: Infinity, "-inf": -Infinity, "-0": -0 }[x.$float];
            if ("$int" in x) {
                const u = BigInt.asUintN(64, BigInt(String(x.$int)));
                return [Number(u >> 32n), Number(u & 0xffffffffn)];
            }
        }
        switch (typeName) {
            case "Int64":
            case "UInt64":
                return typeof x === "number" ? this.scalarFromWire({ $int: String(x) }, typeName) : x;
            case "NodeId":
                return this.nodeId(String(x));
            case "LocalizedText":
                return new this.lib.LocalizedText({ text: x === null ? null : String(x) });
            case "QualifiedName": {
                const m = /^(\d+):(.*)$/s.exec(String(x));
                return new this.lib.QualifiedName(m ? { namespaceIndex: Number(m[1]), name: m[2] } : { namespaceIndex: 0, name: String(x) });
            }
            case "StatusCode": {
                const sc = this.lib.StatusCodes[String(x)];
                if (!sc) throw new BridgeError("bad_request", `unknown status code name ${JSON.stringify(x)}`);
                return sc;
            }
            default:
                return x;
        }
    }

    makeVariant(value, typeName) {
        const { DataType, Variant, VariantArrayType } = this.lib;
        const dataType = DataType[typeName];
        if (typeof typeName !== "string" || typeof dataType !== "number") {
            throw new BridgeError("bad_request", `unknown OPC UA built-in type ${JSON.stringify(typeName)}`);
        }
        try {
            if (Array.isArray(value)) {
                return new Variant({ dataType, arrayType: VariantArrayType.Array, value: value.map((x) => this.scalarFromWire(x, typeName)) });
            }
            return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: this.scalarFromWire(value, typeName) });
        } catch (err) {
            if (err instanceof BridgeError) throw err;
            throw new BridgeError("bad_request", `node-opcua refused a ${typeName} value ${JSON.stringify(value)}: ${describe(err)}`);
        }
    }

    check(statusCode, operation, extra) {
        if (statusCode && typeof statusCode.isGood === "function" && statusCode.isBad()) {
            throw statusError({ name: statusCode.name, value: statusCode.value }, operation, extra);
        }
    }

    // ------------------------------------------------------------------ connection
    /** The store's own certificate, made now rather than inside the first connect (see the top). */
    async preparePki(a) {
        const rootFolder = str(a, "pki_dir");
        const client = this.lib.OPCUAClient.create({
            applicationName: APPLICATION_NAME,
            clientCertificateManager: new this.OPCUACertificateManager({ rootFolder, automaticallyAcceptUnknownCertificate: true }),
        });
        await client.initializeCM();
        return null;
    }

    async connect(a) {
        const lib = this.lib;
        await this.close();
        this.timeoutMs = Number.isInteger(a.timeout_ms) && a.timeout_ms > 0 ? a.timeout_ms : 5000;
        const url = str(a, "url");
        const policy = typeof a.policy === "string" ? a.policy : "None";
        const mode = typeof a.mode === "string" ? a.mode : "None";
        if (lib.SecurityPolicy[policy] === undefined) throw new BridgeError("bad_request", `unknown security policy ${policy}`);
        if (lib.MessageSecurityMode[mode] === undefined) throw new BridgeError("bad_request", `unknown security mode ${mode}`);
        const pki = str(a, "pki_dir");
        // node-opcua raises every request timeout to at least minTransactionTimeout (5 s), so
        // defaultTransactionTimeout alone would not give the adapter's timeout: lower the floor.
        const channelLayer = lib.ClientSecureChannelLayer;
        if (channelLayer && typeof channelLayer.minTransactionTimeout === "number") {
            channelLayer.minTransactionTimeout = Math.min(DEFAULT_MIN_TRANSACTION_TIMEOUT_MS, this.timeoutMs);
        }
        const options = {
            applicationName: APPLICATION_NAME,
            endpointMustExist: false,
            connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
            securityMode: lib.MessageSecurityMode[mode],
            securityPolicy: lib.SecurityPolicy[policy],
            requestedSessionTimeout: SESSION_TIMEOUT_MS,
            defaultTransactionTimeout: this.timeoutMs,
            transportTimeout: this.timeoutMs,
            keepSessionAlive: false,
        };
        if (a.certificate) {
            const certificate = str(a, "certificate");
            const privateKey = str(a, "private_key");
            let uri;
            try {
                const info = this.crypto.exploreCertificate(this.crypto.readCertificate(certificate));
                const san = info.tbsCertificate.extensions && info.tbsCertificate.extensions.subjectAltName;
                uri = san && san.uniformResourceIdentifier && san.uniformResourceIdentifier[0];
            } catch (err) {
                throw new BridgeError("bad_request", `cannot read the client certificate ${certificate}: ${describe(err)}`);
            }
            const own = path.join(pki, "own", "private");
            fs.mkdirSync(own, { recursive: true });
            const target = path.join(own, "private_key.pem");
            const key = fs.readFileSync(privateKey);
            if (!fs.existsSync(target) || !fs.readFileSync(target).equals(key)) fs.writeFileSync(target, key, { mode: 0o600 });
            options.certificateFile = certificate;
            options.privateKeyFile = privateKey;
            if (uri) options.applicationUri = uri;
        }
        options.clientCertificateManager = new this.OPCUACertificateManager({ rootFolder: pki, automaticallyAcceptUnknownCertificate: true });
        const client = lib.OPCUAClient.create(options);
        this.client = client;
        this.lost = null;
        client.on("connection_lost", () => this.markLost("node-opcua: connection_lost (the server closed or reset the connection)"));
        client.on("backoff", (count, delay) => process.stderr.write(`node_opcua_bridge: backoff ${count} ${delay}\n`));
        try {
            await client.connect(url);
        } catch (err) {
            await this.dropClient();
            const sc = statusOf(err);
            if (sc) throw statusError(sc, "connect", `(${describe(err)})`);
            throw new BridgeError("connect", `connect to ${url} failed: ${describe(err)}`);
        }
        relaxIdleTimeout(client);
        const identity = a.user !== null && a.user !== undefined
            ? { type: lib.UserTokenType.UserName, userName: String(a.user), password: a.password === null || a.password === undefined ? "" : String(a.password) }
            : { type: lib.UserTokenType.Anonymous };
        try {
            this.session = await client.createSession(identity);
        } catch (err) {
            await this.dropClient();
            const sc = statusOf(err);
            if (sc) throw statusError(sc, "CreateSession/ActivateSession", `(${describe(err)})`);
            throw new BridgeError("connect", `session on ${url} failed: ${describe(err)}`);
        }
        this.session.on("session_closed", (statusCode) => {
            if (this.session) this.markLost(`node-opcua: the session was closed (${statusCode && statusCode.toString()})`);
        });
        return null;
    }

    markLost(message) {
        if (this.lost) return;
        this.lost = new BridgeError("closed", message);
        for (const entry of this.subs.values()) {
            if (entry.waiter) entry.waiter(null);
        }
        if (this.onLost) this.onLost(this.lost);
    }

    async dropClient() {
        const client = this.client;
        this.client = null;
        this.session = null;
        if (client) {
            await withWatchdog(client.disconnect(), 2000, "disconnect").catch((err) => {
                process.stderr.write(`node_opcua_bridge: disconnect: ${describe(err)}\n`);
            });
        }
    }

    async close() {
        const session = this.session;
        const subs = [...this.subs.values()];
        this.subs.clear();
        this.session = null;
        if (session && !this.lost) {
            for (const entry of subs) {
                await withWatchdog(entry.subscription.terminate(), 1000, "terminate").catch(() => {});
            }
            await withWatchdog(session.close(true), 2000, "CloseSession").catch((err) => {
                process.stderr.write(`node_opcua_bridge: CloseSession: ${describe(err)}\n`);
            });
        }
        await this.dropClient();
        this.lost = null;
        return null;
    }

    requireSession() {
        if (this.lost) throw this.lost;
        if (!this.session) throw new BridgeError("closed", "node-opcua: not connected (call connect first)");
        return this.session;
    }

    // ------------------------------------------------------------------ services
    async browse(a) {
        const session = this.requireSession();
        const { BrowseDirection } = this.lib;
        let result = await session.browse({
            nodeId: this.nodeId(str(a, "node_id")),
            referenceTypeId: "HierarchicalReferences",
            browseDirection: BrowseDirection.Forward,
            includeSubtypes: true,
            nodeClassMask: 0,
            resultMask: 63,
        });
        this.check(result.statusCode, "Browse");
        const refs = [...(result.references || [])];
        for (let round = 0; result.continuationPoint && result.continuationPoint.length && round < MAX_BROWSE_NEXT; round++) {
            result = await session.browseNext(result.continuationPoint, false);
            this.check(result.statusCode, "BrowseNext");
            refs.push(...(result.references || []));
        }
        return refs.map((r) => ({
            browse_name: r.browseName.name,
            node_id: nodeIdText(r.nodeId),
            node_class: this.lib.NodeClass[r.nodeClass] || String(r.nodeClass),
        }));
    }

    async read(a) {
        const session = this.requireSession();
        const dv = await session.read({ nodeId: this.nodeId(str(a, "node_id")), attributeId: this.lib.AttributeIds.Value });
        this.check(dv.statusCode, "Read");
        return this.variantToWire(dv.value);
    }

    async write(a) {
        const session = this.requireSession();
        const nodeId = this.nodeId(str(a, "node_id"));
        const variant = this.makeVariant(a.value, a.type_name);
        const statusCode = await session.write({ nodeId, attributeId: this.lib.AttributeIds.Value, value: { value: variant } });
        this.check(statusCode, "Write");
        return null;
    }

    async call(a) {
        const session = this.requireSession();
        if (!Array.isArray(a.args)) throw new BridgeError("bad_request", "argument args must be a list of [value, type_name]");
        const inputArguments = a.args.map((pair) => {
            if (!Array.isArray(pair) || pair.length !== 2) throw new BridgeError("bad_request", `bad method argument ${JSON.stringify(pair)}`);
            return this.makeVariant(pair[0], pair[1]);
        });
        const result = await session.call({
            objectId: this.nodeId(str(a, "object_id")),
            methodId: this.nodeId(str(a, "method_id")),
            inputArguments,
        });
        const inputs = (result.inputArgumentResults || []).map((sc) => sc.name);
        this.check(result.statusCode, "Call", inputs.length ? `inputArgumentResults [${inputs.join(", ")}]` : "");
        return (result.outputArguments || []).map((v) => this.variantToWire(v));
    }

    async subscribe(a) {
        const session = this.requireSession();
        const lib = this.lib;
        const nodeId = this.nodeId(str(a, "node_id"));
        const interval = num(a, "interval_ms");
        const subscription = await session.createSubscription2({
            requestedPublishingInterval: interval,
            requestedLifetimeCount: 1000,
            requestedMaxKeepAliveCount: 10,
            maxNotificationsPerPublish: 1000,
            publishingEnabled: true,
            priority: 0,
        });
        const entry = { subscription, item: null, queue: [], waiter: null };
        const item = lib.ClientMonitoredItem.create(
            subscription,
            { nodeId, attributeId: lib.AttributeIds.Value },
            { samplingInterval: interval, discardOldest: true, queueSize: MONITORED_QUEUE_SIZE },
            lib.TimestampsToReturn.Both,
        );
        entry.item = item;
        item.on("changed", (dataValue) => {
            entry.queue.push(this.variantToWire(dataValue.value));
            if (entry.waiter) entry.waiter(entry.queue.shift());
        });
        try {
            await new Promise((resolve, reject) => {
                item.once("initialized", resolve);
                item.once("err", (message) => reject(mapError(new Error(String(message)), "CreateMonitoredItems")));
            });
        } catch (err) {
            await withWatchdog(subscription.terminate(), 1000, "terminate").catch(() => {});
            throw err;
        }
        this.nextHandle += 1;
        this.subs.set(this.nextHandle, entry);
        return this.nextHandle;
    }

    entry(a) {
        const handle = a.handle;
        const entry = this.subs.get(handle);
        if (!entry) throw new BridgeError("bad_request", `no subscription with handle ${JSON.stringify(handle)}`);
        return entry;
    }

    nextChange(a) {
        const entry = this.entry(a);
        if (entry.queue.length) return Promise.resolve(entry.queue.shift());
        if (this.lost) return Promise.reject(this.lost);
        const timeoutMs = Math.max(0, num(a, "timeout_ms"));
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                entry.waiter = null;
                reject(new BridgeError("timeout", `no data change within ${timeoutMs} ms`));
            }, timeoutMs);
            entry.waiter = (value) => {
                clearTimeout(timer);
                entry.waiter = null;
                if (this.lost) reject(this.lost);
                else resolve(value);
            };
        });
    }

    async unsubscribe(a) {
        this.requireSession();
        const entry = this.entry(a);
        this.subs.delete(a.handle);
        await entry.subscription.terminate();
        return null;
    }

    // one library operation, bounded by the watchdog and by the loss of the connection
    run(op, a) {
        let work;
        let limit = this.timeoutMs + WATCHDOG_MARGIN_MS;
        switch (op) {
            case "browse": work = () => this.browse(a); limit = this.timeoutMs * 4 + WATCHDOG_MARGIN_MS; break;
            case "read": work = () => this.read(a); break;
            case "write": work = () => this.write(a); break;
            case "call": work = () => this.call(a); break;
            case "subscribe": work = () => this.subscribe(a); limit = this.timeoutMs * 2 + WATCHDOG_MARGIN_MS; break;
            case "next_change": work = () => this.nextChange(a); limit = Math.max(0, Number(a.timeout_ms) || 0) + WATCHDOG_MARGIN_MS; break;
            case "unsubscribe": work = () => this.unsubscribe(a); break;
            default: return Promise.reject(new BridgeError("unsupported", `unknown op ${JSON.stringify(op)}`));
        }
        const lost = new Promise((_, reject) => {
            this.onLost = reject;
        });
        lost.catch(() => {});
        const operation = { browse: "Browse", read: "Read", write: "Write", call: "Call", subscribe: "CreateSubscription",
            next_change: "next_change", unsubscribe: "DeleteSubscriptions" }[op];
        return withWatchdog(Promise.race([Promise.resolve().then(work), lost]), limit, op)
            .catch((err) => { throw mapError(err, operation); })
            .finally(() => { this.onLost = null; });
    }
}

// ---------------------------------------------------------------------------- dispatch

const args = parseArgs(process.argv.slice(2));
let stack;
try {
    stack = new NodeOpcuaStack(args.nodeModules);
} catch (err) {
    process.stderr.write(`node_opcua_bridge: cannot load node-opcua: ${err && err.stack ? err.stack : describe(err)}\n`);
    process.exit(3);
}

async function runOp(op, a) {
    switch (op) {
        case "hello":
            return { stack: STACK, version: stack.version, node: process.versions.node, pid: process.pid };
        case "prepare_pki":
            return withWatchdog(stack.preparePki(a), PREPARE_PKI_WATCHDOG_MS, "prepare_pki");
        case "connect":
            return withWatchdog(stack.connect(a), (Number.isInteger(a.timeout_ms) ? a.timeout_ms : 5000) * 3 + WATCHDOG_MARGIN_MS, "connect");
        case "close":
            return withWatchdog(stack.close(), 5000, "close");
        case "time": {
            // n direct calls of one op inside node: the reference for the bridge's cost
            const n = Number.isInteger(a.n) && a.n > 0 ? a.n : 1;
            const inner = String(a.op);
            const innerArgs = a.args || {};
            const start = process.hrtime.bigint();
            for (let i = 0; i < n; i++) await stack.run(inner, innerArgs);
            const elapsedNs = Number(process.hrtime.bigint() - start);
            return { n, elapsed_ms: elapsedNs / 1e6, per_call_us: elapsedNs / 1e3 / n };
        }
        default:
            return stack.run(op, a);
    }
}

serve({
    name: "node_opcua_bridge",
    library: "node-opcua",
    runOp,
    toError: mapError,
    describe,
    badRequestKind: "bad_request",
    close: () => stack.close(),
    closeMs: 3000,
});
