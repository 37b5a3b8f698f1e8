#!/usr/bin/env node
/*
 * Node.js Modbus TCP servers as third-party peers of the protocol harness (DESIGN §7).
 *
 *   node harness/peers/node_modbus_servers.js STACK IMAGE.json [--host 127.0.0.1] [--port N]
 *                                             [--node-modules DIR]
 *
 * STACK is one of
 *   modbus-serial   modbus-serial's ServerTCP(vector, {host, port, unitID}); the vector reads and
 *                   writes the image (getCoil, getDiscreteInput, getHoldingRegister,
 *                   getInputRegister, setCoil, setRegister, readDeviceIdentification) and throws
 *                   {modbusErrorCode: 2} for an address outside a table's extent.
 *                   ServerTCP listens on `options.port || 502`, so it cannot bind port 0: the
 *                   caller passes a free port (--port is required for this stack).
 *   jsmodbus        jsmodbus's `new Modbus.server.TCP(netServer, {coils, discrete, holding, input})`
 *                   over Buffers that start at address 0 (2 bytes per register, big-endian; 1 bit
 *                   per coil, LSB first); the net.Server binds --port (0 = the OS chooses).
 *
 * IMAGE.json is written by harness/peers/node_modbus_servers.py:
 *   {"unit_ids": [1],
 *    "tables": {"coils": {"start": 0, "count": 4000, "values": [1, 0, ...]}, "discrete_inputs": ...,
 *               "holding_registers": ..., "input_registers": ...},
 *    "device_id": {"0": "Vendor", "1": "Product code", ...}}
 * A table missing from "tables" has no addresses.
 *
 * After listening it prints on stdout exactly
 *
 *     version: X.Y.Z
 *     listening on modbus+tcp://HOST:PORT
 *
 * and nothing else (console.log goes to stderr; the libraries' `debug` output goes to stderr).
 * An exception thrown inside a library while it handles a request would end node (uncaught
 * exception); the script reports it on stderr as "uncaught exception in STACK: ..." and keeps
 * serving, so the client sees no answer to that one request instead of a dead server; with
 * --stock it does not, and node ends as it would with the library as shipped (robustness runs).
 * SIGTERM/SIGINT: the server is closed, open sockets destroyed, exit code 0.
 * Exit code 2 for bad arguments or a bad image, 1 if the stack is missing or cannot listen.
 */
"use strict";

const announce = (line) => process.stdout.write(line + "\n");
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");

const STACKS = ["modbus-serial", "jsmodbus"];
const TABLES = ["coils", "discrete_inputs", "holding_registers", "input_registers"];

function fail(code, message) {
    process.stderr.write(`node_modbus_servers: ${message}\n`);
    process.exit(code);
}

function parseArgs(argv) {
    const args = { stack: null, image: null, host: "127.0.0.1", port: null, nodeModules: null, stock: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) fail(2, `${a} needs a value`);
            return argv[++i];
        };
        if (a === "--host") args.host = value();
        else if (a === "--port") args.port = Number(value());
        else if (a === "--node-modules") args.nodeModules = path.resolve(value());
        else if (a === "--stock") args.stock = true;
        else if (a === "-h" || a === "--help") {
            process.stderr.write("usage: node node_modbus_servers.js modbus-serial|jsmodbus IMAGE.json [--host H] [--port N] [--node-modules DIR] [--stock]\n");
            process.exit(0);
        } else if (a.startsWith("--")) fail(2, `unknown option ${a}`);
        else if (args.stack === null) args.stack = a;
        else if (args.image === null) args.image = a;
        else fail(2, `unexpected argument ${a}`);
    }
    if (!STACKS.includes(args.stack)) fail(2, `STACK must be one of ${STACKS.join(", ")} (got ${args.stack})`);
    if (!args.image) fail(2, "missing IMAGE.json argument");
    if (args.port === null) args.port = 0;
    if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) fail(2, "--port must be 0..65535");
    if (args.stack === "modbus-serial" && args.port === 0) {
        fail(2, "modbus-serial's ServerTCP cannot bind port 0 (it listens on `port || 502`): pass --port N");
    }
    return args;
}

function loadImage(file) {
    let image;
    try {
        image = JSON.parse(fs.readFileSync(file, "utf-8"));
    } catch (err) {
        fail(2, `cannot read image ${file}: ${err.message}`);
    }
    const tables = {};
    for (const name of TABLES) {
        const t = (image.tables || {})[name];
        if (!t) continue;
        const start = t.start, count = t.count, values = t.values;
        if (!Number.isInteger(start) || !Number.isInteger(count) || !Array.isArray(values) || values.length !== count ||
            start < 0 || count < 1 || start + count > 65536) {
            fail(2, `image table ${name} needs integer start, count and count values inside 0..65535`);
        }
        tables[name] = { start, count, values: values.slice() };
    }
    const unitIds = Array.isArray(image.unit_ids) && image.unit_ids.length ? image.unit_ids : [1];
    return { tables, unitIds, deviceId: image.device_id || {} };
}

function requireStack(stack, nodeModules) {
    const where = nodeModules ? path.join(nodeModules, stack) : stack;
    let lib, version = "unknown";
    try {
        lib = require(where);
    } catch (err) {
        fail(1, `${stack} is not installed (${err.message.split("\n")[0]}); run scripts/install-node-packages.sh`);
    }
    try {
        const manifest = nodeModules ? path.join(nodeModules, stack, "package.json") : require.resolve(`${stack}/package.json`);
        version = JSON.parse(fs.readFileSync(manifest, "utf-8")).version || version;
    } catch (err) {
        // the version is informative only
    }
    return { lib, version };
}

// ------------------------------------------------------------------ modbus-serial

function illegalAddress(table, addr) {
    // modbus-serial turns a thrown {modbusErrorCode} into that exception reply
    return { modbusErrorCode: 0x02, msg: `illegal data address ${addr} in ${table}` };
}

function makeVector(tables, deviceId) {
    const cell = (name, addr) => {
        const t = tables[name];
        if (!t || addr < t.start || addr >= t.start + t.count) throw illegalAddress(name, addr);
        return addr - t.start;
    };
    // Plain synchronous functions: modbus-serial tells callback style from the arity, so the
    // getters take (addr, unitID) and the setters (addr, value, unitID).
    const read = (name) => (addr, unitID) => {
        const i = cell(name, addr);  // first: it throws for a table the image does not have
        return tables[name].values[i];
    };
    const getCoil = read("coils"), getDiscreteInput = read("discrete_inputs");
    return {
        getCoil: (addr, unitID) => getCoil(addr, unitID) !== 0,
        getDiscreteInput: (addr, unitID) => getDiscreteInput(addr, unitID) !== 0,
        getHoldingRegister: read("holding_registers"),
        getInputRegister: read("input_registers"),
        setCoil: (addr, value, unitID) => {
            const i = cell("coils", addr);
            tables.coils.values[i] = value ? 1 : 0;
        },
        setRegister: (addr, value, unitID) => {
            const i = cell("holding_registers", addr);
            tables.holding_registers.values[i] = value & 0xffff;
        },
        readDeviceIdentification: (unitID) => deviceId,
    };
}

function startModbusSerial(lib, args, image, onListening) {
    const { ServerTCP } = lib;
    // One unit id in 1..254: modbus-serial answers only it (others get no reply).  Otherwise
    // 255 = "listen to all addresses": every unit id is answered with the same data.
    const ids = image.unitIds;
    const unitID = ids.length === 1 && ids[0] >= 1 && ids[0] <= 254 ? ids[0] : 255;
    const server = new ServerTCP(makeVector(image.tables, image.deviceId), { host: args.host, port: args.port, unitID });
    server.on("serverError", (err) => fail(1, `modbus-serial could not listen on ${args.host}:${args.port}: ${err.message}`));
    server.on("socketError", (err) => process.stderr.write(`modbus-serial socket error: ${err.message}\n`));
    server.on("error", (err) => process.stderr.write(`modbus-serial error: ${err && err.message}\n`));
    server.on("initialized", () => onListening(server._server.address()));
    return () => new Promise((resolve) => {
        try {
            server.close(() => resolve());
        } catch (err) {
            resolve();
        }
    });
}

// ------------------------------------------------------------------ jsmodbus

function bitBuffer(table) {
    if (!table) return Buffer.alloc(0);
    const buf = Buffer.alloc(Math.ceil((table.start + table.count) / 8));
    table.values.forEach((v, i) => {
        const addr = table.start + i;
        if (v) buf[addr >> 3] |= 1 << (addr & 7);
    });
    return buf;
}

function registerBuffer(table) {
    if (!table) return Buffer.alloc(0);
    const buf = Buffer.alloc((table.start + table.count) * 2);
    table.values.forEach((v, i) => buf.writeUInt16BE(v & 0xffff, (table.start + i) * 2));
    return buf;
}

function startJsmodbus(lib, args, image, onListening) {
    const netServer = new net.Server();
    const sockets = new Set();
    netServer.on("connection", (sock) => {
        sockets.add(sock);
        sock.on("close", () => sockets.delete(sock));
        sock.on("error", (err) => process.stderr.write(`jsmodbus socket error: ${err.message}\n`));
    });
    // eslint-disable-next-line no-unused-vars
    const server = new lib.server.TCP(netServer, {
        coils: bitBuffer(image.tables.coils),
        discrete: bitBuffer(image.tables.discrete_inputs),
        holding: registerBuffer(image.tables.holding_registers),
        input: registerBuffer(image.tables.input_registers),
    });
    netServer.on("error", (err) => fail(1, `jsmodbus could not listen on ${args.host}:${args.port}: ${err.message}`));
    netServer.listen({ port: args.port, host: args.host }, () => onListening(netServer.address()));
    return () => new Promise((resolve) => {
        netServer.close(() => resolve());
        for (const sock of sockets) sock.destroy();
    });
}

// ------------------------------------------------------------------ main

function main() {
    const args = parseArgs(process.argv.slice(2));
    const image = loadImage(args.image);
    const { lib, version } = requireStack(args.stack, args.nodeModules);

    if (!args.stock) {  // --stock: the library as shipped, where such an exception ends node
        process.on("uncaughtException", (err) => {
            process.stderr.write(`uncaught exception in ${args.stack}: ${err && err.stack ? err.stack : err}\n`);
        });
    }

    let announced = false;
    const onListening = (address) => {
        if (announced) return;
        announced = true;
        announce(`version: ${version}`);
        announce(`listening on modbus+tcp://${address.address}:${address.port}`);
    };
    const close = args.stack === "modbus-serial"
        ? startModbusSerial(lib, args, image, onListening)
        : startJsmodbus(lib, args, image, onListening);

    let stopping = false;
    const stop = () => {
        if (stopping) return;
        stopping = true;
        setTimeout(() => process.exit(0), 1000).unref();  // bounded: never wait on a stuck close
        close().then(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main();
