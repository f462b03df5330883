// The state of one running function (query, mutation, action or HTTP
// action), found from inside syscalls through AsyncLocalStorage, and the
// per-transaction limits Convex enforces.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { format } from "node:util";

export const executionStorage = new AsyncLocalStorage();

export function currentExecution() {
  return executionStorage.getStore();
}

/** Convex's transaction limits (knobs.rs defaults, docs production/state/limits). */
export const TRANSACTION_LIMITS = {
  indexRanges: 4096,
  documentsRead: 32_000,
  bytesRead: 16 * 1024 * 1024,
  documentsWritten: 16_000,
  bytesWritten: 16 * 1024 * 1024,
};

/** An error raised by the platform rather than user code: reported as "Name: message". */
export class SystemError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
    this.isSystemError = true;
  }
}

export class TransactionMetrics {
  constructor(limits = TRANSACTION_LIMITS) {
    this.limits = limits;
    this.indexRanges = 0;
    this.documentsRead = 0;
    this.bytesRead = 0;
    this.documentsWritten = 0;
    this.bytesWritten = 0;
    /** Set once a limit is hit: the function fails even if user code catches it. */
    this.violation = null;
  }

  _fail(message) {
    this.violation = new SystemError("Error", message);
    throw this.violation;
  }

  countIndexRange() {
    if (++this.indexRanges > this.limits.indexRanges) {
      this._fail(
        `Too many reads in a single function execution (limit: ${this.limits.indexRanges}). Consider using smaller limits in your queries, paginating your queries, or using indexed queries with a selective index range expressions.`,
      );
    }
  }

  countRead(bytes) {
    if (++this.documentsRead > this.limits.documentsRead) {
      this._fail(
        `Too many documents read in a single function execution (limit: ${this.limits.documentsRead}). Consider using smaller limits in your queries, paginating your queries, or using indexed queries with a selective index range expressions.`,
      );
    }
    this.bytesRead += bytes;
    if (this.bytesRead > this.limits.bytesRead) {
      this._fail(`Too many bytes read in a single function execution (limit: ${this.limits.bytesRead} bytes). Consider using smaller limits in your queries, paginating your queries, or using indexed queries with a selective index range expressions.`);
    }
  }

  countWrite(bytes) {
    if (++this.documentsWritten > this.limits.documentsWritten) {
      this._fail(`Too many documents written in a single function execution (limit: ${this.limits.documentsWritten}).`);
    }
    this.bytesWritten += bytes;
    if (this.bytesWritten > this.limits.bytesWritten) {
      this._fail(`Too many bytes written in a single function execution (limit: ${this.limits.bytesWritten} bytes).`);
    }
  }
}

export function newRequestId() {
  return randomBytes(8).toString("hex");
}

export class Execution {
  constructor({ kind, path, identity, metrics, requestId, parent, readSet = null }) {
    this.kind = kind; // "query" | "mutation" | "action"
    this.path = path;
    this.identity = identity;
    this.metrics = metrics;
    this.requestId = requestId;
    this.queries = new Map();
    this.nextQueryId = 0;
    this.paginated = 0;
    this.logLines = parent ? parent.logLines : [];
    /** What a subscribed query reads (read_set.mjs); null when nobody keeps it. */
    this.readSet = parent ? parent.readSet : readSet;
    /** Set when the function timed out: later syscalls fail instead of touching the store. */
    this.closed = false;
  }
}

// console.* inside a function becomes the response's logLines, as Convex
// returns them ("[LOG] 'text'"); outside a function it prints as usual.
const LEVELS = { log: "LOG", info: "INFO", warn: "WARN", error: "ERROR", debug: "DEBUG" };
let consolePatched = false;

export function captureConsole() {
  if (consolePatched) return;
  consolePatched = true;
  for (const [method, level] of Object.entries(LEVELS)) {
    const original = console[method].bind(console);
    console[method] = (...args) => {
      const execution = executionStorage.getStore();
      if (!execution) return original(...args);
      const text = args.map((a) => (typeof a === "string" ? `'${a}'` : format("%o", a))).join(" ");
      execution.logLines.push(`[${level}] ${text}`);
    };
  }
}
