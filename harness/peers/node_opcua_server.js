#!/usr/bin/env node
/*
 * node-opcua (2.182.x) OPC UA server as a third-party peer of the protocol harness (DESIGN §7).
 *
 *   node harness/peers/node_opcua_server.js IMAGE.json [--host 127.0.0.1] [--port 0]
 *                                           [--pki DIR] [--trust DIR]... [--node-modules DIR]
 *
 * IMAGE.json is a "device image" (see harness/peers/node_opcua_server.py): endpoint path,
 * namespace, one object with variables and methods, users, security policies, BuildInfo.
 * The server binds HOST:PORT (port 0 = the OS chooses; node-opcua reads the bound port back),
 * then prints on stdout
 *
 *     version: 2.182.2
 *     listening on opc.tcp://127.0.0.1:PORT/PATH
 *
 * and nothing else: node-opcua's own logging (console.log) is sent to stderr.
 *
 * PKI: the server's certificate store lives in --pki DIR (default: a fresh temporary directory,
 * removed on exit).  Unknown client certificates are REJECTED (automaticallyAcceptUnknown-
 * Certificate = false); certificate files (DER or PEM) found in each --trust DIR are copied into
 * DIR/trusted/certs before the server starts, so the harness's client certificate is trusted.
 *
 * --node-modules DIR loads node-opcua from DIR/node-opcua instead of the usual resolution
 * (the project's node_modules, found by walking up from this file).
 *
 * Exit: on SIGTERM/SIGINT the server shuts down cleanly, then the process re-raises the signal
 * (so it ends "killed by SIGTERM", at once: see stop() below).  Exit code 2 for bad arguments or
 * a bad image, 1 if the server fails to start.
 * Every step of start-up and shutdown is bounded by a timer.
 */
"use strict";

// node-opcua logs warnings with console.log; stdout is reserved for the announcement.
const announce = (line) => process.stdout.write(line + "\n");
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const START_TIMEOUT_MS = 60000;
const STOP_TIMEOUT_MS = 2500;
const MAX_CONNECTIONS = 100; // node-opcua 2.182 defaults: 10 connections per endpoint, 10 sessions
const POLICIES = ["None", "Basic128Rsa15", "Basic256", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"];
const DATA_TYPES = ["Boolean", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double", "String", "Byte", "SByte"];

function fail(code, message) {
    process.stderr.write(`node_opcua_server: ${message}\n`);
    process.exit(code);
}

function parseArgs(argv) {
    const args = { image: null, host: "127.0.0.1", port: 0, pki: null, trust: [], nodeModules: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) fail(2, `${a} needs a value`);
            return argv[++i];
        };
        if (a === "--host") args.host = value();
        else if (a === "--port") args.port = Number(value());
        else if (a === "--pki") args.pki = value();
        else if (a === "--trust") args.trust.push(value());
        else if (a === "--node-modules") args.nodeModules = path.resolve(value());
        else if (a === "-h" || a === "--help") {
            process.stderr.write("usage: node node_opcua_server.js IMAGE.json [--host H] [--port N] [--pki DIR] [--trust DIR]... [--node-modules DIR]\n");
            process.exit(0);
        } else if (a.startsWith("--")) fail(2, `unknown option ${a}`);
        else if (args.image === null) args.image = a;
        else fail(2, `unexpected argument ${a}`);
    }
    if (!args.image) fail(2, "missing IMAGE.json argument");
    if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) fail(2, "--port must be 0..65535");
    return args;
}

function nodeOpcuaEntry(nodeModules) {
    return nodeModules ? path.join(nodeModules, "node-opcua") : "node-opcua";
}

function nodeOpcuaVersion(nodeModules) {
    try {
        const pkg = path.join(path.dirname(require.resolve(nodeOpcuaEntry(nodeModules))), "..", "package.json");
        return JSON.parse(fs.readFileSync(pkg, "utf8")).version;
    } catch (_err) {
        return "unknown";
    }
}

function loadImage(file) {
    let image;
    try {
        image = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (err) {
        fail(2, `cannot read image ${file}: ${err.message}`);
    }
    for (const key of ["endpoint_path", "namespace_uri", "object"]) {
        if (image[key] === undefined || image[key] === null) fail(2, `image ${file} has no "${key}"`);
    }
    image.variables = image.variables || [];
    image.methods = image.methods || [];
    image.users = image.users || [];
    image.security = image.security || [{ policy: "None", modes: ["None"] }];
    image.build_info = image.build_info || {};
    const check = (where, t) => {
        if (!DATA_TYPES.includes(t)) fail(2, `image ${file}: ${where} has data_type ${JSON.stringify(t)} (one of ${DATA_TYPES.join(", ")})`);
    };
    // checked before node-opcua is loaded: once loaded, process.exit() waits for its RSA self-test
    const bare = (x) => String(x).replace(/_/g, "");
    for (const entry of image.security) {
        if (!POLICIES.some((p) => bare(p) === bare(entry.policy))) {
            fail(2, `image ${file}: unknown security policy ${JSON.stringify(entry.policy)} (one of ${POLICIES.join(", ")})`);
        }
        for (const mode of entry.modes || []) {
            if (!["None", "Sign", "SignAndEncrypt"].includes(mode)) fail(2, `image ${file}: unknown security mode ${JSON.stringify(mode)}`);
            if ((mode === "None") !== (entry.policy === "None")) {
                fail(2, `image ${file}: security policy ${entry.policy} cannot be used with mode ${mode}`);
            }
        }
    }
    for (const v of image.variables) check(`variable ${v.browse_name}`, v.data_type);
    for (const m of image.methods) {
        for (const a of [...(m.inputs || []), ...(m.outputs || [])]) check(`method ${m.browse_name} argument ${a.name}`, a.data_type);
        if (!["sum", "echo"].includes(m.action)) fail(2, `image ${file}: method ${m.browse_name} has action ${JSON.stringify(m.action)} (sum or echo)`);
        if (m.action === "sum" && (m.outputs || []).length !== 1) fail(2, `image ${file}: method ${m.browse_name}: action sum needs exactly one output`);
    }
    return image;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const image = loadImage(args.image);
    const version = nodeOpcuaVersion(args.nodeModules);

    let opcua;
    try {
        opcua = require(nodeOpcuaEntry(args.nodeModules));
    } catch (err) {
        fail(1, `cannot load node-opcua (${err.message}); run scripts/install-node-packages.sh`);
    }
    const {
        OPCUAServer, OPCUACertificateManager, DataType, Variant, VariantArrayType, StatusCodes,
        SecurityPolicy, MessageSecurityMode, makeEUInformation, standardUnits, coerceInt64, coerceUInt64
    } = opcua;

    // ------------------------------------------------------------------ PKI
    const ownPki = !args.pki;
    const pkiRoot = args.pki || fs.mkdtempSync(path.join(os.tmpdir(), "node-opcua-peer-"));
    const cleanup = () => {
        if (ownPki) {
            try { fs.rmSync(pkiRoot, { recursive: true, force: true }); } catch (_err) { /* exiting */ }
        }
    };
    const serverPki = path.join(pkiRoot, "server");
    const userPki = path.join(pkiRoot, "user");
    const trustedDir = path.join(serverPki, "trusted", "certs");
    fs.mkdirSync(trustedDir, { recursive: true });
    for (const dir of args.trust) {
        let names;
        try {
            names = fs.readdirSync(dir);
        } catch (err) {
            cleanup();
            fail(2, `--trust ${dir}: ${err.message}`);
        }
        for (const name of names) {
            if (!/\.(der|pem|crt|cer)$/i.test(name)) continue;
            fs.copyFileSync(path.join(dir, name), path.join(trustedDir, name));
        }
    }
    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: serverPki,
        automaticallyAcceptUnknownCertificate: false
    });
    const userCertificateManager = new OPCUACertificateManager({
        rootFolder: userPki,
        automaticallyAcceptUnknownCertificate: false
    });

    // ------------------------------------------------------------------ security
    // policy names as in the policy URI fragment ("Aes128_Sha256_RsaOaep"); the spelling
    // without underscores (asyncua's "Aes128Sha256RsaOaep") is accepted too
    const policyOf = (name) => {
        const bare = (x) => String(x).replace(/_/g, "");
        const key = Object.keys(SecurityPolicy).find((k) => k === name || bare(k) === bare(name));
        const p = key === undefined ? undefined : SecurityPolicy[key];
        if (p === undefined) {
            cleanup();
            fail(2, `unknown security policy ${JSON.stringify(name)} (node-opcua knows: ${Object.keys(SecurityPolicy).join(", ")})`);
        }
        return p;
    };
    const modeOf = (name) => {
        const m = MessageSecurityMode[name];
        if (m === undefined || typeof m !== "number") {
            cleanup();
            fail(2, `unknown security mode ${JSON.stringify(name)}`);
        }
        return m;
    };
    const wanted = new Set(); // "policyURI|mode" pairs exactly as the image lists them
    const policies = [];
    const modes = [];
    for (const entry of image.security) {
        const policy = policyOf(entry.policy);
        if (!policies.includes(policy)) policies.push(policy);
        for (const modeName of entry.modes || []) {
            const mode = modeOf(modeName);
            if (!modes.includes(mode)) modes.push(mode);
            wanted.add(`${policy}|${mode}`);
        }
    }

    // ------------------------------------------------------------------ server
    // The OperationLimits the profile claims (configuration: node-opcua enforces what it states).
    function operationLimits(limits) {
        const names = {
            max_nodes_per_read: "maxNodesPerRead", max_nodes_per_write: "maxNodesPerWrite",
            max_nodes_per_browse: "maxNodesPerBrowse", max_nodes_per_method_call: "maxNodesPerMethodCall",
            max_nodes_per_register_nodes: "maxNodesPerRegisterNodes",
            max_nodes_per_translate: "maxNodesPerTranslateBrowsePathsToNodeIds",
            max_monitored_items_per_call: "maxMonitoredItemsPerCall"
        };
        const out = {};
        for (const [key, value] of Object.entries(limits)) {
            if (names[key]) out[names[key]] = value;
        }
        return out;
    }
    const bi = image.build_info;
    const users = new Map(image.users.map((u) => [u.name, u.password]));
    const server = new OPCUAServer({
        host: args.host,
        hostname: args.host,
        port: args.port,
        resourcePath: image.endpoint_path || "",
        maxConnectionsPerEndpoint: MAX_CONNECTIONS,
        serverCapabilities: { maxSessions: MAX_CONNECTIONS, operationLimits: operationLimits(image.limits || {}) },
        securityPolicies: policies,
        securityModes: modes,
        allowAnonymous: true,
        userManager: { isValidUser: (name, password) => users.has(name) && users.get(name) === password },
        serverCertificateManager,
        userCertificateManager,
        serverInfo: {
            applicationUri: image.application_uri || undefined,
            productUri: image.product_uri || undefined,
            applicationName: { text: bi.product_name || "node-opcua peer", locale: "en" }
        },
        buildInfo: {
            productUri: image.product_uri || undefined,
            manufacturerName: bi.manufacturer_name || "",
            productName: bi.product_name || "",
            softwareVersion: bi.software_version || "",
            buildNumber: bi.build_number || "",
            buildDate: bi.build_date ? new Date(bi.build_date) : new Date()
        }
    });

    // On SIGTERM/SIGINT: shut the server down (sessions, channels, sockets closed: ~20 ms), then
    // die by the same signal with its default action.  process.exit() would instead wait for
    // libuv's thread pool, where node-opcua-secure-channel starts an RSA-4096 key generation
    // when it is loaded (the NODE-OPCUA-W27 PKCS#1 v1.5 self-test): that can take 5 s.
    let stopping = false;
    const stop = async (signal) => {
        if (stopping) return;
        stopping = true;
        const die = () => {
            cleanup();
            process.removeAllListeners(signal);
            process.kill(process.pid, signal);
        };
        setTimeout(die, STOP_TIMEOUT_MS).unref();
        try { await server.shutdown(0); } catch (_err) { /* exiting anyway */ }
        die();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));

    const startTimer = setTimeout(() => {
        process.stderr.write(`node_opcua_server: start-up took more than ${START_TIMEOUT_MS} ms\n`);
        cleanup();
        process.exit(1);
    }, START_TIMEOUT_MS);

    await server.initialize();
    buildAddressSpace(server.engine.addressSpace, image);

    // node-opcua offers every (policy x mode) pair; keep exactly the pairs the image lists.
    for (const endpoint of server.endpoints) {
        const descriptions = endpoint.endpointDescriptions();
        const keep = descriptions.filter((d) => d.restricted || wanted.has(`${d.securityPolicyUri}|${d.securityMode}`));
        descriptions.splice(0, descriptions.length, ...keep);
    }

    await server.start();
    clearTimeout(startTimer);
    const port = server.endpoints[0].port;
    announce(`version: ${version}`);
    announce(`listening on opc.tcp://${args.host}:${port}${image.endpoint_path || ""}`);

    // ------------------------------------------------------------------ helpers
    function buildAddressSpace(addressSpace, img) {
        const namespace = addressSpace.registerNamespace(img.namespace_uri);
        const ns = namespace.index;
        const nodeIdOf = (id) => (/^ns=\d+;/.test(id) ? id : `ns=${ns};${id}`);
        const obj = namespace.addObject({
            organizedBy: addressSpace.rootFolder.objects,
            browseName: img.object.browse_name,
            nodeId: nodeIdOf(img.object.node_id)
        });
        for (const v of img.variables) {
            const dataType = dataTypeOf(v.data_type);
            const isArray = v.array_length !== null && v.array_length !== undefined || Array.isArray(v.value);
            const access = v.writable ? "CurrentRead | CurrentWrite" : "CurrentRead";
            const variable = namespace.addVariable({
                componentOf: obj,
                browseName: v.browse_name,
                nodeId: nodeIdOf(v.node_id),
                dataType,
                valueRank: isArray ? 1 : -1,
                arrayDimensions: isArray ? [v.array_length ?? v.value.length] : null,
                accessLevel: access,
                userAccessLevel: access,
                value: makeVariant(v.data_type, v.value, isArray)
            });
            if (v.unit) {
                namespace.addVariable({
                    propertyOf: variable,
                    browseName: { name: "EngineeringUnits", namespaceIndex: 0 }, // standard property: ns 0
                    typeDefinition: "PropertyType",
                    dataType: "EUInformation",
                    accessLevel: "CurrentRead",
                    userAccessLevel: "CurrentRead",
                    value: new Variant({ dataType: DataType.ExtensionObject, value: euInformation(v.unit) })
                });
            }
        }
        for (const m of img.methods) {
            const argDef = (a) => ({ name: a.name, dataType: dataTypeOf(a.data_type), valueRank: -1, description: { text: a.name } });
            const method = namespace.addMethod(obj, {
                browseName: m.browse_name,
                nodeId: nodeIdOf(m.node_id),
                inputArguments: (m.inputs || []).map(argDef),
                outputArguments: (m.outputs || []).map(argDef)
            });
            method.bindMethod(async (inputArguments, _context) => {
                try {
                    return { statusCode: StatusCodes.Good, outputArguments: runAction(m, inputArguments) };
                } catch (err) {
                    console.error(`method ${m.browse_name}: ${err.message}`);
                    return { statusCode: StatusCodes.BadInvalidArgument };
                }
            });
        }
    }

    function dataTypeOf(name) {
        const t = DataType[name];
        if (typeof t !== "number") throw new Error(`unknown data type ${JSON.stringify(name)}`);
        return t;
    }

    function coerceScalar(typeName, value) {
        if (typeName === "Int64") return coerceInt64(String(value));
        if (typeName === "UInt64") return coerceUInt64(String(value));
        return value;
    }

    function makeVariant(typeName, value, isArray) {
        const dataType = dataTypeOf(typeName);
        if (isArray) {
            return new Variant({ dataType, arrayType: VariantArrayType.Array, value: (value || []).map((x) => coerceScalar(typeName, x)) });
        }
        // (Int64 values are [high, low] pairs: node-opcua needs the arrayType spelled out)
        return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: coerceScalar(typeName, value) });
    }

    function euInformation(unit) {
        const known = Object.values(standardUnits).find((u) => u.displayName && u.displayName.text === unit);
        if (known) return known;
        const eu = makeEUInformation("", unit, unit);
        eu.unitId = -1; // Part 8: -1 = no UNECE code available
        return eu;
    }

    function toBigIntOrNumber(variant) {
        const v = variant.value;
        if (variant.dataType === DataType.Int64) return BigInt.asIntN(64, (BigInt(v[0] >>> 0) << 32n) | BigInt(v[1] >>> 0));
        if (variant.dataType === DataType.UInt64) return BigInt.asUintN(64, (BigInt(v[0] >>> 0) << 32n) | BigInt(v[1] >>> 0));
        if (variant.dataType === DataType.Boolean) return v ? 1 : 0;
        return v;
    }

    function runAction(m, inputs) {
        const outputs = m.outputs || [];
        if (m.action === "echo") {
            return outputs.map((o, i) => {
                const input = inputs[i];
                return new Variant({ dataType: dataTypeOf(o.data_type), arrayType: input.arrayType, value: input.value });
            });
        }
        if (m.action === "sum") {
            if (outputs.length !== 1) throw new Error("action sum needs exactly one output");
            const outType = outputs[0].data_type;
            const values = inputs.map(toBigIntOrNumber);
            let total;
            if (/Int64$/.test(outType) || values.some((x) => typeof x === "bigint")) {
                total = values.reduce((acc, x) => acc + BigInt(typeof x === "bigint" ? x : Math.trunc(x)), 0n).toString();
            } else {
                total = values.reduce((acc, x) => acc + Number(x), 0);
                if (outType === "Boolean") total = total !== 0;
            }
            return [new Variant({ dataType: dataTypeOf(outType), arrayType: VariantArrayType.Scalar, value: coerceScalar(outType, total) })];
        }
        throw new Error(`unknown action ${JSON.stringify(m.action)}`);
    }
}

main().catch((err) => {
    process.stderr.write(`node_opcua_server: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
