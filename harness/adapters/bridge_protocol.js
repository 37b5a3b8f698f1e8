/*
 * The line protocol every node bridge speaks with harness/adapters/node_bridge.py, shared by
 * node_bridge.js (Modbus stacks) and node_opcua_bridge.js (node-opcua).
 *
 * One JSON request per stdin line, {"id": N, "op": NAME, "args": {...}}, answered by one JSON
 * line on stdout, {"id": N, "ok": true, "result": ...} or {"id": N, "ok": false, "error":
 * {"kind", "message", "code"?, "status"?}}.  Requests run strictly one after another; a bad line
 * is answered, never fatal; an exception a library throws outside any handler fails the request
 * in flight; stdout carries nothing but replies (console output goes to stderr).
 */
"use strict";

const readline = require("node:readline");
const util = require("node:util");

class BridgeError extends Error {
    constructor(kind, message, code, status) {
        super(message);
        this.kind = kind;
        this.code = code;
        this.status = status;
    }
}

const writeLine = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

/** Send console output to stderr: stdout is the protocol channel.  Call before loading a library. */
function quietConsole() {
    for (const name of ["log", "info", "debug", "warn", "trace"]) {
        console[name] = (...args) => process.stderr.write(util.format(...args) + "\n");
    }
}

function withWatchdog(promise, ms, what) {
    let timer;
    const watchdog = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new BridgeError("timeout", `bridge watchdog: ${what} did not settle within ${ms} ms`)), ms);
    });
    return Promise.race([promise, watchdog]).finally(() => clearTimeout(timer));
}

/**
 * Serve requests from stdin until it closes.
 *   name            the script, for stderr messages
 *   library         what runs inside, for stderr messages
 *   runOp(op, a)    the operation (a promise)
 *   toError(err, op) a BridgeError for anything else a request fails with
 *   describe(err)   one line about any thrown value
 *   badRequestKind  the error kind of a line that is not a request
 *   close()         a promise closing the library's connection when stdin ends
 *   closeMs         how long that may take
 */
function serve({ name, library, runOp, toError, describe, badRequestKind, close, closeMs }) {
    let current = null; // {fail(err)} of the request in flight, for uncaught library exceptions
    process.on("uncaughtException", (err) => {
        process.stderr.write(`${name}: uncaught exception inside ${library}: ${err && err.stack ? err.stack : describe(err)}\n`);
        if (current) current.fail(new BridgeError("other", `uncaught exception inside ${library}: ${describe(err)}`));
    });
    // the parent went away while we write: nothing left to answer to
    process.stdout.on("error", () => process.exit(0));
    process.on("unhandledRejection", (err) => {
        process.stderr.write(`${name}: unhandled rejection inside ${library}: ${describe(err)}\n`);
    });

    function handleLine(line) {
        if (!line.trim()) return Promise.resolve();
        let req;
        try {
            req = JSON.parse(line);
        } catch (err) {
            writeLine({ id: null, ok: false, error: { kind: badRequestKind, message: `bad request line (not JSON): ${describe(err)}` } });
            return Promise.resolve();
        }
        if (req === null || typeof req !== "object" || typeof req.op !== "string") {
            const id = req && typeof req === "object" && "id" in req ? req.id : null;
            writeLine({ id, ok: false, error: { kind: badRequestKind, message: "bad request: expected {\"id\": N, \"op\": NAME, \"args\": {...}}" } });
            return Promise.resolve();
        }
        const id = "id" in req ? req.id : null;
        const a = req.args && typeof req.args === "object" ? req.args : {};
        return new Promise((resolve) => {
            let settled = false;
            const finish = (reply) => {
                if (settled) return;
                settled = true;
                current = null;
                writeLine(reply);
                resolve();
            };
            const fail = (err) => {
                const e = err instanceof BridgeError ? err : toError(err, req.op);
                const error = { kind: e.kind, message: e.message };
                if (e.code !== undefined) error.code = e.code;
                if (e.status !== undefined) error.status = e.status;
                finish({ id, ok: false, error });
            };
            current = { fail };
            Promise.resolve()
                .then(() => runOp(req.op, a))
                .then((result) => finish({ id, ok: true, result: result === undefined ? null : result }), fail);
        });
    }

    // requests run strictly one after another, in arrival order
    let chain = Promise.resolve();
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on("line", (line) => { chain = chain.then(() => handleLine(line)); });
    rl.on("close", () => {
        // the parent closed our stdin (or died): close the library's connection, bounded, and leave
        chain.then(() => withWatchdog(close(), closeMs, "close").catch(() => {})).finally(() => process.exit(0));
    });
}

module.exports = { BridgeError, quietConsole, serve, withWatchdog, writeLine };
