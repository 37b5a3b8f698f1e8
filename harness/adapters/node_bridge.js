#!/usr/bin/env node
/*
 * Bridge from the protocol harness (Python) to a JavaScript Modbus TCP client stack.
 *
 *   node harness/adapters/node_bridge.js STACK [--node-modules DIR]
 *
 * STACK is `modbus-serial` or `jsmodbus`.  One long-lived process per client adapter
 * (harness/adapters/node_bridge.py starts it): line-delimited JSON on stdin/stdout.
 *
 *   request  {"id": N, "op": "read_holding_registers", "args": {"address": 0, "count": 10}}
 *   reply    {"id": N, "ok": true, "result": [...]}
 *            {"id": N, "ok": false, "error": {"kind": K, "code": C, "message": "..."}}
 *
 * kind is one of modbus (code = the exception code), timeout, connect, closed, bad_response,
 * unsupported, other.  Ops: hello, connect {host, port, unit, timeout_ms}, close, every
 * operation of harness.adapters.modbus.ModbusClient (same argument names), and
 * time {op, args, n} which runs an op n times inside node and reports the elapsed time (to
 * compare the bridged cost with a direct call).  Requests are executed one after the other,
 * in arrival order.  A line that is not a valid request gets an error reply (id null when
 * none can be read), never a crash.  stdout carries ONLY reply lines: console.* and the
 * libraries' debug output go to stderr.  stdin closing (the parent went away) ends the process.
 *
 * Each library call is also bounded here by a watchdog (the client timeout x the number of
 * requests the op may make, + 1 s), in case the library never settles its promise; the
 * reply then says so (kind timeout, "bridge watchdog").  An exception thrown asynchronously
 * inside a library (uncaughtException) fails the op in flight with kind "other".
 *
 * What each library does, read from its code (modbus-serial 8.0.25, jsmodbus 5.0.0):
 *
 * modbus-serial: ModbusRTU + TcpPort.  Requests are queued per transaction id, which is
 *   1..255 then 0 (mod 256); a response whose MBAP transaction id matches no pending entry is
 *   dropped silently (wrong-tid -> the request times out).  Errors: Modbus exception ->
 *   Error with .modbusCode; no answer -> TransactionTimedOutError (errno ETIMEDOUT); not
 *   connected -> PortNotOpenError (errno ECONNREFUSED, also after the peer closed); a
 *   malformed answer -> plain Error "Data length error", "CRC error" (the CRC is computed by
 *   TcpPort itself, so never fails on TCP) or "Unexpected data error".  The connection
 *   closing while a request is pending does NOT fail that request: it runs into its timeout.
 *   FC43 objects come back as strings decoded with Buffer "ascii" (the high bit of each byte
 *   is dropped), returned here re-encoded as latin1; the library follows "more follows" by
 *   itself, but when a follow-up request of that stream fails (exception answer or timeout)
 *   its callback dereferences the missing result and throws a TypeError asynchronously
 *   (uncaught: it would end a plain application; here it fails the op in flight, kind
 *   "other"); thrown from the socket's data handler, it also leaves the exception frame in
 *   TcpPort's buffer, so every later answer on that connection throws again.
 *   setTimeout() also sets the socket idle timeout used while connecting.
 * jsmodbus: ModbusTCPClient(socket, unitId, timeout) over a net.Socket we connect.  One
 *   request on the wire at a time (its own queue).  Errors are UserRequestError {err, message,
 *   response}: err "ModbusException" (response.body.code), "Timeout", "OutOfSync" (response
 *   transaction id or function code differs; every queued request is rejected too),
 *   "Protocol" (protocol id != 0), "Offline" (socket closed, also mid-request),
 *   "ManuallyCleared"; a bad argument rejects with a plain Error ("InvalidQuantity", ...)
 *   before anything is sent.  Responses with another unit id are ignored (-> timeout).  Read
 *   coils/discrete inputs return whole bytes of bits: trimmed here to the count asked.  No
 *   FC22/FC23 (-> unsupported).  FC43 returns one response; the bridge follows "more
 *   follows" itself with the library's readDeviceIdentification(code, nextObjectId).
 */
"use strict";

const path = require("node:path");
const util = require("node:util");
const { BridgeError, quietConsole, serve, withWatchdog } = require("./bridge_protocol.js");

// stdout is the protocol channel: everything else goes to stderr.
quietConsole();

const STACKS = ["modbus-serial", "jsmodbus"];
const FC = {
    read_coils: 1, read_discrete_inputs: 2, read_holding_registers: 3, read_input_registers: 4,
    write_coil: 5, write_register: 6, write_coils: 15, write_registers: 16,
    mask_write_register: 22, read_write_registers: 23, read_device_identification: 43,
};
const FC43_MAX_REQUESTS = 8; // "more follows" rounds the bridge/library may make

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
    if (!STACKS.includes(args.stack)) die(`usage: node node_bridge.js ${STACKS.join("|")} [--node-modules DIR]`);
    return args;
}

function die(message) {
    process.stderr.write(`node_bridge: ${message}\n`);
    process.exit(2);
}

function load(name, nodeModules) {
    const entry = nodeModules ? path.join(nodeModules, name) : name;
    const lib = require(entry);
    const manifest = require(nodeModules ? path.join(nodeModules, name, "package.json") : `${name}/package.json`);
    return { lib, version: manifest.version };
}

// ---------------------------------------------------------------------------- errors

function describe(err) {
    if (err === null || err === undefined) return String(err);
    if (typeof err !== "object") return String(err);
    const parts = [];
    if (err.name && err.name !== "Error") parts.push(err.name);
    if (err.err) parts.push(err.err);
    if (err.code && typeof err.code === "string") parts.push(err.code);
    if (err.message) parts.push(err.message);
    return parts.join(": ") || util.inspect(err, { depth: 1 });
}

const LOST_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ENOTCONN", "ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END"]);

function mapModbusSerialError(err) {
    if (err instanceof BridgeError) return err;
    const message = describe(err);
    if (err && Number.isInteger(err.modbusCode)) return new BridgeError("modbus", message, err.modbusCode);
    if (err && (err.name === "TransactionTimedOutError" || err.errno === "ETIMEDOUT")) return new BridgeError("timeout", message);
    if (err && err.name === "PortNotOpenError") return new BridgeError("closed", message);
    if (err && LOST_CODES.has(err.code)) return new BridgeError("closed", message);
    if (err && typeof err.message === "string" && /^(Data length error|CRC error|Unexpected data error)/.test(err.message)) {
        return new BridgeError("bad_response", message);
    }
    return new BridgeError("other", message);
}

function mapJsmodbusError(err) {
    if (err instanceof BridgeError) return err;
    const message = describe(err);
    if (err && typeof err.err === "string") {
        switch (err.err) {
            case "ModbusException": {
                const body = err.response && err.response.body;
                return new BridgeError("modbus", message, body ? body.code : undefined);
            }
            case "Timeout": return new BridgeError("timeout", message);
            case "OutOfSync":
            case "Protocol": return new BridgeError("bad_response", message);
            case "Offline": return new BridgeError("closed", message);
            default: return new BridgeError("other", message);
        }
    }
    if (err && LOST_CODES.has(err.code)) return new BridgeError("closed", message);
    if (err instanceof Error && /^Invalid/.test(err.message)) {
        return new BridgeError("other", `jsmodbus refused the request before sending it: ${err.message}`);
    }
    return new BridgeError("other", message);
}

function connectError(err, host, port) {
    const message = `connect to ${host}:${port} failed: ${describe(err)}`;
    return new BridgeError("connect", message);
}

// ---------------------------------------------------------------------------- helpers

function toBools(values, count) {
    const out = [];
    for (let i = 0; i < count && i < values.length; i++) out.push(Boolean(values[i]));
    return out;
}

function hexOf(buffer) {
    return Buffer.from(buffer).toString("hex");
}

function int(args, name) {
    const v = args[name];
    if (!Number.isInteger(v)) throw new BridgeError("other", `argument ${name} must be an integer, got ${JSON.stringify(v)}`);
    return v;
}

function list(args, name) {
    const v = args[name];
    if (!Array.isArray(v)) throw new BridgeError("other", `argument ${name} must be a list, got ${JSON.stringify(v)}`);
    return v;
}

// ---------------------------------------------------------------------------- modbus-serial

class ModbusSerialStack {
    constructor(nodeModules) {
        const { lib, version } = load("modbus-serial", nodeModules);
        this.ModbusRTU = lib;
        this.version = version;
        this.client = null;
        this.timeoutMs = 2000;
        this.closedAt = null;
    }

    async connect(host, port, unit, timeoutMs) {
        await this.close();
        this.timeoutMs = timeoutMs;
        const client = new this.ModbusRTU();
        client.on("error", (e) => process.stderr.write(`modbus-serial error event: ${describe(e)}\n`));
        client.on("close", () => { this.closedAt = Date.now(); });
        client.setID(unit);
        client.setTimeout(timeoutMs);
        this.closedAt = null;
        try {
            // the socket idle timeout (= timeoutMs) bounds the connect; the watchdog is a backstop
            await withWatchdog(client.connectTCP(host, { port }), timeoutMs + 1000, "connectTCP");
        } catch (err) {
            try { client.destroy(() => {}); } catch (e) { /* already gone */ }
            throw connectError(err, host, port);
        }
        this.client = client;
    }

    async close() {
        const client = this.client;
        this.client = null;
        if (!client) return;
        // close() ends the socket and calls back on 'close', but never if the socket is
        // already closed: bound it, then destroy.
        try {
            await withWatchdog(new Promise((resolve) => client.close(() => resolve())), 500, "close");
        } catch (e) { /* fall through to destroy */ }
        try { client.destroy(() => {}); } catch (e) { /* already gone */ }
    }

    call(op, args) {
        const c = this.client;
        if (!c) return Promise.reject(new BridgeError("closed", "not connected (call connect first)"));
        switch (op) {
            case "read_coils": {
                const count = int(args, "count");
                return c.readCoils(int(args, "address"), count).then((r) => toBools(r.data, count));
            }
            case "read_discrete_inputs": {
                const count = int(args, "count");
                return c.readDiscreteInputs(int(args, "address"), count).then((r) => toBools(r.data, count));
            }
            case "read_holding_registers":
                return c.readHoldingRegisters(int(args, "address"), int(args, "count")).then((r) => r.data);
            case "read_input_registers":
                return c.readInputRegisters(int(args, "address"), int(args, "count")).then((r) => r.data);
            case "write_coil":
                return c.writeCoil(int(args, "address"), Boolean(args.value)).then(() => null);
            case "write_register":
                return c.writeRegister(int(args, "address"), int(args, "value")).then(() => null);
            case "write_coils":
                return c.writeCoils(int(args, "address"), list(args, "values").map(Boolean)).then(() => null);
            case "write_registers":
                return c.writeRegisters(int(args, "address"), list(args, "values")).then(() => null);
            case "mask_write_register":
                return c.maskWriteRegister(int(args, "address"), int(args, "and_mask"), int(args, "or_mask")).then(() => null);
            case "read_write_registers": {
                const values = list(args, "values");
                return c.readWriteRegisters(int(args, "read_address"), int(args, "read_count"), int(args, "write_address"),
                    values.length, values).then((r) => r.data);
            }
            case "read_device_identification":
                return c.readDeviceIdentification(int(args, "read_code"), int(args, "object_id")).then((r) => {
                    const objects = {};
                    for (const [id, text] of Object.entries(r.data)) objects[id] = hexOf(Buffer.from(text, "latin1"));
                    return { objects, conformity_level: r.conformityLevel };
                });
            default:
                return Promise.reject(new BridgeError("unsupported", `modbus-serial ${this.version} has no API for ${op}`));
        }
    }

    mapError(err) {
        const mapped = mapModbusSerialError(err);
        if (mapped.kind === "timeout" && this.closedAt !== null) {
            mapped.message += " (the connection had been closed by the peer; modbus-serial fails a pending request only by its timeout)";
        }
        return mapped;
    }
}

// ---------------------------------------------------------------------------- jsmodbus

class JsmodbusStack {
    constructor(nodeModules) {
        const { lib, version } = load("jsmodbus", nodeModules);
        this.Modbus = lib;
        this.version = version;
        this.net = require("node:net");
        this.client = null;
        this.socket = null;
        this.timeoutMs = 2000;
    }

    async connect(host, port, unit, timeoutMs) {
        await this.close();
        this.timeoutMs = timeoutMs;
        const socket = new this.net.Socket();
        // an 'error' without a listener would crash the process; jsmodbus itself only listens
        // to 'connect' and 'close' (its requests fail with "Offline" on close)
        socket.on("error", (e) => { this.lastSocketError = e; });
        const client = new this.Modbus.client.TCP(socket, unit, timeoutMs);
        await new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                socket.destroy();
                reject(new BridgeError("connect", `connect to ${host}:${port} timed out after ${timeoutMs} ms`));
            }, timeoutMs);
            socket.once("connect", () => { clearTimeout(timer); resolve(); });
            socket.once("error", (e) => { clearTimeout(timer); socket.destroy(); reject(connectError(e, host, port)); });
            socket.connect({ host, port });
        });
        socket.setNoDelay(true);
        this.socket = socket;
        this.client = client;
    }

    async close() {
        const socket = this.socket;
        this.socket = null;
        this.client = null;
        if (!socket || socket.destroyed) return;
        await new Promise((resolve) => {
            const timer = setTimeout(() => { socket.destroy(); resolve(); }, 500);
            socket.once("close", () => { clearTimeout(timer); resolve(); });
            socket.end();
        });
    }

    async readDeviceIdentification(readCode, objectId) {
        const objects = {};
        let conformity = null;
        let next = objectId;
        for (let round = 0; round < FC43_MAX_REQUESTS; round++) {
            const r = await withWatchdog(this.client.readDeviceIdentification(readCode, next), this.timeoutMs + 1000,
                "readDeviceIdentification");
            const body = r.response.body;
            conformity = body.conformityLevel;
            for (const o of body.objects) objects[o.id] = hexOf(o.value);
            if (!body.moreFollows || body.objects.length === 0) return { objects, conformity_level: conformity };
            next = body.nextObjectId;
        }
        throw new BridgeError("bad_response", `device identification still "more follows" after ${FC43_MAX_REQUESTS} requests`);
    }

    call(op, args) {
        const c = this.client;
        if (!c) return Promise.reject(new BridgeError("closed", "not connected (call connect first)"));
        switch (op) {
            case "read_coils": {
                const count = int(args, "count");
                return c.readCoils(int(args, "address"), count).then((r) => toBools(r.response.body.valuesAsArray, count));
            }
            case "read_discrete_inputs": {
                const count = int(args, "count");
                return c.readDiscreteInputs(int(args, "address"), count).then((r) => toBools(r.response.body.valuesAsArray, count));
            }
            case "read_holding_registers":
                return c.readHoldingRegisters(int(args, "address"), int(args, "count")).then((r) => Array.from(r.response.body.values));
            case "read_input_registers":
                return c.readInputRegisters(int(args, "address"), int(args, "count")).then((r) => Array.from(r.response.body.values));
            case "write_coil":
                return c.writeSingleCoil(int(args, "address"), Boolean(args.value)).then(() => null);
            case "write_register":
                return c.writeSingleRegister(int(args, "address"), int(args, "value")).then(() => null);
            case "write_coils":
                return c.writeMultipleCoils(int(args, "address"), list(args, "values").map(Boolean)).then(() => null);
            case "write_registers":
                return c.writeMultipleRegisters(int(args, "address"), list(args, "values")).then(() => null);
            case "read_device_identification":
                return this.readDeviceIdentification(int(args, "read_code"), int(args, "object_id"));
            default:
                return Promise.reject(new BridgeError("unsupported", `jsmodbus ${this.version} has no API for ${op}`));
        }
    }

    mapError(err) {
        return mapJsmodbusError(err);
    }
}

// ---------------------------------------------------------------------------- dispatch

const args = parseArgs(process.argv.slice(2));
let stack;
try {
    stack = args.stack === "jsmodbus" ? new JsmodbusStack(args.nodeModules) : new ModbusSerialStack(args.nodeModules);
} catch (err) {
    process.stderr.write(`node_bridge: cannot load ${args.stack}: ${describe(err)}\n`);
    process.exit(3);
}

async function runOp(op, a) {
    switch (op) {
        case "hello":
            return { stack: args.stack, version: stack.version, node: process.versions.node, pid: process.pid };
        case "connect":
            await stack.connect(String(a.host), int(a, "port"), Number.isInteger(a.unit) ? a.unit : 1,
                Number.isInteger(a.timeout_ms) ? a.timeout_ms : 2000);
            return null;
        case "close":
            await stack.close();
            return null;
        case "time": {
            // n direct calls of one op inside node: the reference for the bridge's cost
            const n = int(a, "n");
            const inner = String(a.op);
            const innerArgs = a.args || {};
            const start = process.hrtime.bigint();
            for (let i = 0; i < n; i++) await libraryCall(inner, innerArgs);
            const elapsedNs = Number(process.hrtime.bigint() - start);
            return { n, elapsed_ms: elapsedNs / 1e6, per_call_us: elapsedNs / 1e3 / n };
        }
        default:
            if (!(op in FC)) throw new BridgeError("unsupported", `unknown op ${JSON.stringify(op)}`);
            return libraryCall(op, a);
    }
}

async function libraryCall(op, a) {
    const rounds = op === "read_device_identification" ? FC43_MAX_REQUESTS : 1;
    try {
        return await withWatchdog(Promise.resolve().then(() => stack.call(op, a)), stack.timeoutMs * rounds + 1000, op);
    } catch (err) {
        throw stack.mapError(err);
    }
}

serve({
    name: "node_bridge",
    library: args.stack,
    runOp,
    toError: (err) => new BridgeError("other", describe(err)),
    describe,
    badRequestKind: "other",
    close: () => stack.close(),
    closeMs: 1000,
});
