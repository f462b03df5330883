// Runs functions the way a Convex deployment does: resolves the path,
// checks visibility and kind, validates arguments, runs queries and
// mutations one at a time (so every read sees a consistent store and a
// mutation's writes become visible all at once, or not at all), and turns
// the outcome into Convex's success/error result.
import {
  Execution,
  executionStorage,
  newRequestId,
  SystemError,
  TransactionMetrics,
} from "./execution.mjs";
import { performance } from "node:perf_hooks";
import { ReadSet } from "./read_set.mjs";
import { validate } from "./validator.mjs";
import { checkValueLimits, convexToJson, jsonToConvex } from "./values.mjs";

const KIND_NAMES = { query: "Query", mutation: "Mutation", action: "Action" };
const MAX_RESULT_BYTES = 16 * 1024 * 1024;
/**
 * Wall-clock limit for a query or mutation. Convex allows 1 s of user-code
 * time, not counting database time, which this runtime cannot tell apart;
 * the larger wall-clock budget keeps big migration batches on a busy
 * machine from failing where Convex would not.
 */
export const DEFAULT_FUNCTION_TIMEOUT_MS = 5_000;

function isConvexError(error) {
  return error !== null && typeof error === "object" && Symbol.for("ConvexError") in error;
}

/** The ConvexError's data as encoded JSON text (the function wrapper may already have serialised it). */
function convexErrorDataJson(error) {
  if (typeof error.data === "string" && error.ConvexErrorSymbol === Symbol.for("ConvexError")) return error.data;
  return JSON.stringify(convexToJson(error.data === undefined ? null : error.data));
}

/** A failure as Convex reports it in `errorMessage` (and `errorData` for ConvexError). */
function failureOf(error, requestId) {
  const prefix = `[Request ID: ${requestId}] Server Error`;
  const message = error?.message ?? String(error);
  if (error?.isNotFound) return { errorMessage: message, innerMessage: message };
  if (isConvexError(error)) {
    return { errorMessage: `${prefix}\nUncaught ConvexError: ${message}`, errorDataJson: convexErrorDataJson(error), innerMessage: message };
  }
  if (error?.isSystemError) return { errorMessage: `${prefix}\n${error.name}: ${message}`, innerMessage: message };
  return { errorMessage: `${prefix}\nUncaught ${error?.name ?? "Error"}: ${message}`, innerMessage: message };
}

/** The error a caller inside a function sees for a failed nested call. */
function rethrowable(outcome) {
  const error = new Error(outcome.innerMessage ?? outcome.errorMessage);
  if (outcome.errorDataJson !== undefined) error.data = JSON.parse(outcome.errorDataJson);
  return error;
}

function notFound(message) {
  const error = new Error(message);
  error.isNotFound = true;
  return error;
}

export class Executor {
  constructor({ db, project, deploymentName, functionTimeoutMs = DEFAULT_FUNCTION_TIMEOUT_MS }) {
    this.db = db;
    this.project = project;
    this.deploymentName = deploymentName;
    this.functionTimeoutMs = functionTimeoutMs;
    this.pending = [];
    this.running = false;
    this.isId = (table, id) => db.isIdOfTable(table, id);
  }

  /**
   * Runs task alone: after every earlier query/mutation has finished and
   * before any later one starts. A priority task (subscription refreshes)
   * goes ahead of those still waiting.
   */
  exclusive(task, { priority = false } = {}) {
    return new Promise((resolve, reject) => {
      const job = { task, resolve, reject };
      if (priority) this.pending.unshift(job);
      else this.pending.push(job);
      if (!this.running) this._drain();
    });
  }

  async _drain() {
    this.running = true;
    while (this.pending.length > 0) {
      const job = this.pending.shift();
      try {
        job.resolve(await job.task());
      } catch (error) {
        job.reject(error);
      }
    }
    this.running = false;
  }

  async _withTimeout(execution, promise) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        execution.closed = true;
        reject(new SystemError("Error", `Function execution timed out (maximum duration: ${this.functionTimeoutMs / 1000}s)`));
      }, this.functionTimeoutMs);
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  _resolve(path, expectedKind, allowInternal) {
    const fn = this.project.lookup(path);
    if (!fn || (fn.visibility === "internal" && !allowInternal)) {
      throw notFound(allowInternal ? `Could not find function for '${path}'.` : `Could not find public function for '${path}'.`);
    }
    if (expectedKind && fn.kind !== expectedKind) {
      throw new SystemError("Error", `Trying to execute ${fn.path} as ${KIND_NAMES[expectedKind]}, but it is defined as ${KIND_NAMES[fn.kind]}.`);
    }
    return fn;
  }

  _checkArgs(fn, argsJson) {
    let args;
    try {
      args = jsonToConvex(argsJson);
      checkValueLimits(args);
    } catch (error) {
      throw new SystemError("ArgumentValidationError", error.message);
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw new SystemError("ArgumentValidationError", "Function arguments must be an object.");
    }
    const error = validate(args, fn.argsValidator, this.isId);
    if (error) throw new SystemError("ArgumentValidationError", error);
  }

  _checkResult(fn, valueJson) {
    if (valueJson.length > MAX_RESULT_BYTES) {
      throw new SystemError("Error", `Function return value is too large (${valueJson.length} bytes > maximum size ${MAX_RESULT_BYTES} bytes).`);
    }
    if (fn.returnsValidator) {
      const error = validate(jsonToConvex(JSON.parse(valueJson)), fn.returnsValidator, this.isId);
      if (error) throw new SystemError("ReturnsValidationError", error);
    }
  }

  /** Runs a query or mutation as its own transaction, after those queued before it. */
  _runTransaction(fn, argsText, execution) {
    const queuedAt = performance.now();
    return this.exclusive(() => {
      execution.queuedMs = performance.now() - queuedAt;
      return this._transaction(fn, argsText, execution);
    });
  }

  /** The transaction itself; the caller holds the store (see exclusive). */
  async _transaction(fn, argsText, execution) {
    const db = this.db;
    const isMutation = fn.kind === "mutation";
    if (isMutation) db.beginTransaction();
    try {
      const invoke = executionStorage.run(execution, () =>
        isMutation ? fn.fn.invokeMutation(argsText) : fn.fn.invokeQuery(argsText),
      );
      const valueJson = await this._withTimeout(execution, invoke);
      if (execution.metrics.violation) throw execution.metrics.violation;
      this._checkResult(fn, valueJson);
      if (isMutation) execution.ts = db.commit();
      return valueJson;
    } catch (error) {
      if (isMutation) db.rollback();
      throw error;
    } finally {
      execution.closed = true;
    }
  }

  /**
   * Calls a function by path. `argsJson` is the encoded-JSON args object.
   * Resolves to {status: "success", valueJson, logLines} or
   * {status: "error", errorMessage, errorDataJson?, logLines}.
   */
  async call({ path, argsJson, identity = null, allowInternal = false, expectedKind = null, requestId = newRequestId() }) {
    return await this._call({ path, argsJson, identity, allowInternal, expectedKind, requestId, alreadyExclusive: false });
  }

  /**
   * Runs a query while the caller already holds the store (inside
   * `exclusive`), recording what it reads: the sync protocol's initial runs
   * and re-runs. Resolves to the call's outcome plus `readSet`.
   */
  async runSubscribedQuery({ path, argsJson, identity = null, allowInternal = false }) {
    const readSet = new ReadSet();
    const outcome = await this._call({ path, argsJson, identity, allowInternal, expectedKind: "query", requestId: newRequestId(), alreadyExclusive: true, readSet });
    outcome.readSet = readSet.finish();
    return outcome;
  }

  /**
   * Outcomes carry `execMs`, the time the function ran inside the runtime
   * (waiting for the store excluded), and for mutations `ts`, the commit
   * timestamp (nanoseconds, BigInt).
   */
  async _call({ path, argsJson, identity, allowInternal, expectedKind, requestId, alreadyExclusive, readSet = null }) {
    const logLines = [];
    const startedAt = performance.now();
    let execution = null;
    const execMs = () => performance.now() - startedAt - (execution?.queuedMs ?? 0);
    try {
      const fn = this._resolve(path, expectedKind, allowInternal);
      this._checkArgs(fn, argsJson);
      const argsText = `[${JSON.stringify(argsJson)}]`;
      let valueJson;
      if (fn.kind === "action") {
        execution = new Execution({ kind: "action", path: fn.path, identity, metrics: null, requestId });
        execution.logLines = logLines;
        valueJson = await executionStorage.run(execution, () => fn.fn.invokeAction(requestId, argsText));
        this._checkResult(fn, valueJson);
      } else {
        execution = new Execution({ kind: fn.kind, path: fn.path, identity, metrics: new TransactionMetrics(), requestId, readSet });
        execution.logLines = logLines;
        valueJson = alreadyExclusive
          ? await this._transaction(fn, argsText, execution)
          : await this._runTransaction(fn, argsText, execution);
      }
      const outcome = { status: "success", valueJson, logLines, execMs: execMs() };
      if (execution.ts !== undefined) outcome.ts = execution.ts;
      return outcome;
    } catch (error) {
      return { status: "error", ...failureOf(error, requestId), logLines, execMs: execMs() };
    }
  }

  /** The wire form of an outcome (innerMessage is for nested callers only). */
  static envelope(outcome, exportValue) {
    if (outcome.status === "success") {
      return `{"status":"success","value":${exportValue(outcome.valueJson)}${outcome.logLines.length ? `,"logLines":${JSON.stringify(outcome.logLines)}` : ""}}`;
    }
    let text = `{"status":"error","errorMessage":${JSON.stringify(outcome.errorMessage)}`;
    if (outcome.errorDataJson !== undefined) text += `,"errorData":${exportValue(outcome.errorDataJson)}`;
    if (outcome.logLines.length) text += `,"logLines":${JSON.stringify(outcome.logLines)}`;
    return text + "}";
  }

  /** An HTTP action handler, run with an action's context. */
  async runHttpAction(handler, request, identity) {
    const execution = new Execution({ kind: "action", path: "http", identity, metrics: null, requestId: newRequestId() });
    try {
      return await executionStorage.run(execution, () => handler.invokeHttpAction(request));
    } finally {
      // No client receives an HTTP action's logs: they go to the runtime's log.
      for (const line of execution.logLines) process.stdout.write(`convex-sandbox: [http ${request.method} ${new URL(request.url).pathname}] ${line}\n`);
    }
  }

  // ---------------------------------------------------------- called by syscalls

  /** ctx.runQuery / ctx.runMutation from a query or mutation: part of the caller's transaction. */
  async runNested(parent, { udfType, name, args }) {
    const kind = udfType === "mutation" ? "mutation" : "query";
    if (kind === "mutation" && parent.kind !== "mutation") throw new Error("ctx.runMutation can only be called from a mutation");
    const fn = this._resolve(name, kind, true);
    this._checkArgs(fn, args);
    const child = new Execution({ kind, path: fn.path, identity: parent.identity, metrics: parent.metrics, requestId: parent.requestId, parent });
    const savepoint = this.db.savepoint();
    const argsText = `[${JSON.stringify(args)}]`;
    try {
      const valueJson = await executionStorage.run(child, () =>
        kind === "mutation" ? fn.fn.invokeMutation(argsText) : fn.fn.invokeQuery(argsText),
      );
      this._checkResult(fn, valueJson);
      return valueJson;
    } catch (error) {
      if (kind === "mutation") this.db.rollbackTo(savepoint);
      if (isConvexError(error)) {
        const rethrown = new Error(error.message);
        rethrown.data = JSON.parse(convexErrorDataJson(error));
        throw rethrown;
      }
      throw error;
    } finally {
      child.closed = true;
    }
  }

  /** ctx.runQuery / runMutation / runAction from an action: separate transactions. */
  async runFromAction(parent, kind, { name, args }) {
    const outcome = await this.call({ path: name, argsJson: args, identity: parent.identity, allowInternal: true, expectedKind: kind, requestId: parent.requestId });
    parent.logLines.push(...outcome.logLines);
    if (outcome.status === "error") throw rethrowable(outcome);
    return outcome.valueJson;
  }
}
