// Convex's WebSocket sync protocol, as ConvexClient / ConvexReactClient
// (`/api/<npm version>/sync`) and the Rust and Python clients (`/api/sync`)
// speak it: Connect, Authenticate, ModifyQuerySet, Mutation, Action and
// Event from the client; Transition, MutationResponse, ActionResponse,
// AuthError, FatalError and Ping from the server (wire facts: convex-js
// src/browser/sync/protocol.ts, convex-backend crates/sync and
// crates/local_backend/src/subs).
//
// Each connection keeps a state version {querySet, identity, ts} and a query
// set. Queries run inside the executor's exclusive section, recording what
// they read (read_set.mjs); every commit marks the queries whose read set it
// touched, and one refresh pass — a priority task, so every re-run sees the
// same snapshot — re-runs them and sends each affected connection one
// Transition to the latest commit timestamp, with the results that changed.
import { performance } from "node:perf_hooks";
import { WebSocketServer } from "ws";

/** A Ping message after this long without other output (backend: HEARTBEAT_INTERVAL). */
const HEARTBEAT_MS = 15_000;
/** WebSocket ping frames this often; a client silent for CLIENT_TIMEOUT_MS is dropped. */
const WS_PING_MS = 5_000;
const CLIENT_TIMEOUT_MS = 120_000;
/** Mutation responses kept per session for requests a client re-sends after reconnecting. */
const SESSION_RESPONSES_KEPT = 1_000;
const SESSION_RESPONSES_TTL_MS = 10 * 60_000;
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024 + 2_000;

/** EncodedTS: standard padded base64 of the u64 little-endian. */
export function encodeTs(ts) {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64LE(BigInt(ts));
  return buffer.toString("base64");
}

export function decodeTs(text) {
  const buffer = Buffer.from(text, "base64");
  if (buffer.length !== 8) throw new Error(`invalid timestamp ${JSON.stringify(text)}`);
  return buffer.readBigUInt64LE();
}

function versionJson({ querySet, identity, ts }) {
  return `{"querySet":${querySet},"identity":${identity},"ts":"${encodeTs(ts)}"}`;
}

function wallClockNanos() {
  return Math.round((performance.timeOrigin + performance.now()) * 1e6);
}

/** A client message the server cannot accept: answered with FatalError, then the socket closes. */
class ProtocolError extends Error {}

/** An identity the server no longer accepts: answered with AuthError, then the socket closes. */
class AuthFailure extends Error {
  constructor(message, authUpdateAttempted) {
    super(message);
    this.authUpdateAttempted = authUpdateAttempted;
  }
}

function requireInteger(value, name) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new ProtocolError(`Received Invalid JSON on websocket: ${name} must be a u32, got ${JSON.stringify(value)}`);
  }
  return value;
}

function requireString(value, name) {
  if (typeof value !== "string") throw new ProtocolError(`Received Invalid JSON on websocket: missing field \`${name}\``);
  return value;
}

/** `args` on the wire is a one-element array holding the args object. */
function argsOf(message) {
  const args = message.args;
  if (!Array.isArray(args) || args.length !== 1 || args[0] === null || typeof args[0] !== "object" || Array.isArray(args[0])) {
    throw new ProtocolError("Received Invalid JSON on websocket: args must be an array holding one object");
  }
  return args[0];
}

class Session {
  constructor(ws, clientVersion) {
    this.ws = ws;
    this.clientVersion = clientVersion;
    this.sessionId = null;
    /** The version the client last received. */
    this.version = { querySet: 0, identity: 0, ts: 0n };
    /** What the client has asked for so far (applied at the next refresh). */
    this.receivedQuerySet = 0;
    this.receivedIdentity = 0;
    this.identity = null;
    this.admin = false;
    this.identityExpiresAt = null; // seconds since the epoch, for JWT identities
    this.queries = new Map(); // queryId → {path, argsJson, readSet, resultKey}
    this.pendingModifications = [];
    this.invalidated = new Set();
    this.updateScheduled = false;
    /** A MutationResponse/ActionResponse went out: the client needs a Transition after it. */
    this.needsTransition = false;
    this.clientClockSkew = null;
    this.mutationChain = Promise.resolve();
    this.messageChain = Promise.resolve();
    this.lastSentAt = performance.now();
    this.lastReceivedAt = performance.now();
    this.closed = false;
  }

  send(text) {
    if (this.closed) return;
    this.ws.send(text);
    this.lastSentAt = performance.now();
  }

  /** The key under which a query's result may be shared with other sessions at one snapshot. */
  identityKey() {
    return this.admin ? `admin:${JSON.stringify(this.identity)}` : JSON.stringify(this.identity);
  }
}

export class SyncServer {
  /**
   * @param executor runs functions (executor.mjs)
   * @param authenticator verifies JWTs and admin keys (auth.mjs)
   * @param db the store, whose commits drive the subscriptions
   */
  constructor({ executor, authenticator, db, log = () => {} }) {
    this.executor = executor;
    this.authenticator = authenticator;
    this.db = db;
    this.log = log;
    this.sessions = new Set();
    this.sessionResponses = new Map(); // sessionId → {responses: Map<requestId, Promise<string>>, seenAt}
    this.flushScheduled = false;
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES });
    db.commitListeners.push((commit) => this._onCommit(commit));
    this.timer = setInterval(() => this._tick(), WS_PING_MS);
    this.timer.unref();
  }

  /** Takes an HTTP upgrade for /api/sync or /api/<client version>/sync; returns false for other paths. */
  handleUpgrade(req, socket, head) {
    const path = new URL(req.url, "http://localhost").pathname;
    const match = /^\/api\/(?:([^/]+)\/)?sync$/.exec(path);
    if (!match) return false;
    const clientVersion = req.headers["convex-client"] ?? (match[1] ? `npm-${match[1]}` : "unknown");
    this.wss.handleUpgrade(req, socket, head, (ws) => this._accept(ws, clientVersion));
    return true;
  }

  close() {
    clearInterval(this.timer);
    for (const session of this.sessions) session.ws.terminate();
    this.sessions.clear();
    this.wss.close();
  }

  /** How many sockets are open (diagnostics and tests). */
  get connectionCount() {
    return this.sessions.size;
  }

  _accept(ws, clientVersion) {
    const session = new Session(ws, clientVersion);
    this.sessions.add(session);
    ws.on("message", (data, isBinary) => {
      session.lastReceivedAt = performance.now();
      if (isBinary) {
        this._fail(session, new ProtocolError("Received Invalid JSON on websocket: binary frames are not part of the protocol"));
        return;
      }
      const text = data.toString("utf8");
      session.messageChain = session.messageChain.then(() => this._handleText(session, text)).catch((error) => this._fail(session, error));
    });
    ws.on("pong", () => {
      session.lastReceivedAt = performance.now();
    });
    ws.on("close", () => {
      session.closed = true;
      this.sessions.delete(session);
    });
    ws.on("error", () => {
      session.closed = true;
      this.sessions.delete(session);
    });
  }

  /** Ends a session after an error, the way the backend does: a final message for client errors, then close. */
  _fail(session, error) {
    if (session.closed) return;
    if (error instanceof AuthFailure) {
      session.send(JSON.stringify({ type: "AuthError", error: error.message, baseVersion: session.version.identity, authUpdateAttempted: error.authUpdateAttempted }));
      session.ws.close();
    } else if (error instanceof ProtocolError) {
      session.send(JSON.stringify({ type: "FatalError", error: error.message }));
      session.ws.close();
    } else {
      this.log(`convex-sandbox: sync session failed: ${error?.stack ?? error}`);
      session.ws.close(1011, "InternalServerError");
    }
    session.closed = true;
    this.sessions.delete(session);
  }

  async _handleText(session, text) {
    if (session.closed) return;
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      throw new ProtocolError(`Received Invalid JSON on websocket: ${error.message}`);
    }
    if (message === null || typeof message !== "object") throw new ProtocolError("Received Invalid JSON on websocket: expected an object");
    switch (message.type) {
      case "Connect":
        return this._connect(session, message);
      case "ModifyQuerySet":
        return this._modifyQuerySet(session, message);
      case "Authenticate":
        return await this._authenticate(session, message);
      case "Mutation":
        return this._mutation(session, message);
      case "Action":
        return this._action(session, message);
      case "Event":
        return undefined; // client telemetry
      default:
        throw new ProtocolError(`Received Invalid JSON on websocket: unknown variant \`${message.type}\``);
    }
  }

  _connect(session, message) {
    session.sessionId = requireString(message.sessionId, "sessionId");
    requireInteger(message.connectionCount, "connectionCount");
    if (typeof message.clientTs === "number") session.clientClockSkew = Math.round(message.clientTs - Date.now());
    if (typeof message.maxObservedTimestamp === "string") {
      // A client that saw a later timestamp (this runtime before a restart, with
      // a clock since set back) must not see time go backwards.
      let observed;
      try {
        observed = decodeTs(message.maxObservedTimestamp);
      } catch (error) {
        throw new ProtocolError(`Received Invalid JSON on websocket: ${error.message}`);
      }
      this.db.observeTs(observed);
    }
  }

  _modifyQuerySet(session, message) {
    const baseVersion = requireInteger(message.baseVersion, "baseVersion");
    const newVersion = requireInteger(message.newVersion, "newVersion");
    if (baseVersion !== session.receivedQuerySet) {
      throw new ProtocolError(`Base version ${baseVersion} passed up doesn't match the current version ${session.receivedQuerySet}`);
    }
    if (!(baseVersion < newVersion)) throw new ProtocolError(`New version ${newVersion} is not after base version ${baseVersion}`);
    if (!Array.isArray(message.modifications)) throw new ProtocolError("Received Invalid JSON on websocket: missing field `modifications`");
    for (const modification of message.modifications) {
      if (modification?.type === "Add") {
        requireInteger(modification.queryId, "queryId");
        requireString(modification.udfPath, "udfPath");
        session.pendingModifications.push({ type: "Add", queryId: modification.queryId, path: modification.udfPath, argsJson: argsOf(modification) });
      } else if (modification?.type === "Remove") {
        session.pendingModifications.push({ type: "Remove", queryId: requireInteger(modification.queryId, "queryId") });
      } else {
        throw new ProtocolError(`Received Invalid JSON on websocket: unknown query set modification ${JSON.stringify(modification?.type)}`);
      }
    }
    session.receivedQuerySet = newVersion;
    this._schedule(session);
  }

  async _authenticate(session, message) {
    const baseVersion = requireInteger(message.baseVersion, "baseVersion");
    let identity = null;
    let admin = false;
    let expiresAt = null;
    try {
      if (message.tokenType === "User") {
        const token = requireString(message.value, "value");
        identity = await this.authenticator.verifyJwt(token);
        expiresAt = this.authenticator.tokenExpiry(token);
      } else if (message.tokenType === "Admin") {
        const actingAs = message.impersonating ?? message.acting_as ?? null;
        ({ identity } = this.authenticator.authenticateAdmin(requireString(message.value, "value"), actingAs));
        admin = true;
      } else if (message.tokenType !== "None") {
        throw new ProtocolError(`Received Invalid JSON on websocket: unknown tokenType ${JSON.stringify(message.tokenType)}`);
      }
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      throw new AuthFailure(error.message, true);
    }
    if (baseVersion !== session.receivedIdentity) {
      throw new Error(`Authenticate base version ${baseVersion} does not match the current identity version ${session.receivedIdentity}`);
    }
    session.identity = identity;
    session.admin = admin;
    session.identityExpiresAt = expiresAt;
    session.receivedIdentity++;
    this._schedule(session);
  }

  /** The session's identity for a function call; an expired JWT ends the session (as the backend's TokenExpired). */
  _currentIdentity(session) {
    if (session.identityExpiresAt !== null && session.identityExpiresAt < Date.now() / 1000) {
      throw new AuthFailure("Convex token identity expired", false);
    }
    return { identity: session.identity, admin: session.admin };
  }

  _mutation(session, message) {
    const requestId = requireInteger(message.requestId, "requestId");
    const path = requireString(message.udfPath, "udfPath");
    const argsJson = argsOf(message);
    const caller = this._currentIdentity(session);
    // One mutation at a time per connection, in the order sent (as the backend does).
    session.mutationChain = session.mutationChain.then(async () => {
      const response = await this._runMutationOnce(session, requestId, () =>
        this.executor.call({ path, argsJson, identity: caller.identity, allowInternal: caller.admin, expectedKind: "mutation" }),
      );
      session.send(response);
      session.needsTransition = true;
      this._schedule(session);
    }).catch((error) => this._fail(session, error));
  }

  /**
   * Runs a mutation unless this session already ran the same request (a
   * client re-sends unconfirmed mutations after reconnecting, with the same
   * sessionId and requestId); resolves to the MutationResponse text.
   */
  async _runMutationOnce(session, requestId, run) {
    let entry = null;
    if (session.sessionId !== null) {
      entry = this.sessionResponses.get(session.sessionId);
      if (!entry) this.sessionResponses.set(session.sessionId, (entry = { responses: new Map(), seenAt: Date.now() }));
      entry.seenAt = Date.now();
      const earlier = entry.responses.get(requestId);
      if (earlier) return await earlier;
    }
    const response = run().then((outcome) => {
      const logLines = JSON.stringify(outcome.logLines);
      if (outcome.status === "success") {
        return `{"type":"MutationResponse","requestId":${requestId},"success":true,"result":${outcome.valueJson},"ts":"${encodeTs(outcome.ts)}","logLines":${logLines}}`;
      }
      const errorData = outcome.errorDataJson === undefined ? "" : `,"errorData":${outcome.errorDataJson}`;
      return `{"type":"MutationResponse","requestId":${requestId},"success":false,"result":${JSON.stringify(outcome.errorMessage)},"ts":null,"logLines":${logLines}${errorData}}`;
    });
    if (entry) {
      entry.responses.set(requestId, response);
      if (entry.responses.size > SESSION_RESPONSES_KEPT) entry.responses.delete(entry.responses.keys().next().value);
    }
    return await response;
  }

  _action(session, message) {
    const requestId = requireInteger(message.requestId, "requestId");
    const path = requireString(message.udfPath, "udfPath");
    const argsJson = argsOf(message);
    const caller = this._currentIdentity(session);
    // Actions run concurrently with everything else on the connection.
    this.executor
      .call({ path, argsJson, identity: caller.identity, allowInternal: caller.admin, expectedKind: "action" })
      .then((outcome) => {
        const logLines = JSON.stringify(outcome.logLines);
        if (outcome.status === "success") {
          session.send(`{"type":"ActionResponse","requestId":${requestId},"success":true,"result":${outcome.valueJson},"logLines":${logLines}}`);
        } else {
          const errorData = outcome.errorDataJson === undefined ? "" : `,"errorData":${outcome.errorDataJson}`;
          session.send(`{"type":"ActionResponse","requestId":${requestId},"success":false,"result":${JSON.stringify(outcome.errorMessage)},"logLines":${logLines}${errorData}}`);
        }
        session.needsTransition = true;
        this._schedule(session);
      })
      .catch((error) => this._fail(session, error));
  }

  // ---------------------------------------------------------------- refresh

  _onCommit({ changes }) {
    for (const session of this.sessions) {
      for (const [queryId, query] of session.queries) {
        if (session.invalidated.has(queryId)) continue;
        if (query.readSet.overlaps(changes)) {
          session.invalidated.add(queryId);
          this._schedule(session);
        }
      }
    }
  }

  _schedule(session) {
    session.updateScheduled = true;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the current turn's microtasks, so a MutationResponse sent in
    // them goes out before the Transition that confirms it.
    setImmediate(() => {
      this.executor
        .exclusive(() => this._flush(), { priority: true })
        .catch((error) => this.log(`convex-sandbox: sync refresh failed: ${error?.stack ?? error}`));
    });
  }

  /**
   * One refresh pass over every session waiting for one, at one snapshot:
   * apply query set changes, (re-)run new, invalidated or (after an identity
   * change) all queries, and send each session one Transition.
   */
  async _flush() {
    this.flushScheduled = false;
    const ts = this.db.ts;
    const results = new Map(); // shared by sessions with equal queries and identity
    for (const session of [...this.sessions]) {
      if (!session.updateScheduled || session.closed) continue;
      session.updateScheduled = false;
      try {
        await this._refresh(session, ts, results);
      } catch (error) {
        this._fail(session, error);
      }
    }
  }

  async _refresh(session, ts, results) {
    const start = session.version;
    const identityChanged = session.receivedIdentity !== start.identity;
    const modifications = [];
    const toRun = new Set(identityChanged ? session.queries.keys() : session.invalidated);
    session.invalidated.clear();
    for (const change of session.pendingModifications.splice(0)) {
      if (change.type === "Add") {
        if (session.queries.has(change.queryId)) throw new Error(`Duplicate query ID: ${change.queryId}`);
        session.queries.set(change.queryId, { path: change.path, argsJson: change.argsJson, readSet: null, resultKey: null });
        toRun.add(change.queryId);
      } else {
        if (!session.queries.delete(change.queryId)) throw new Error(`Nonexistent query id: ${change.queryId}`);
        toRun.delete(change.queryId);
        modifications.push(`{"type":"QueryRemoved","queryId":${change.queryId}}`);
      }
    }
    if (toRun.size > 0) {
      const caller = this._currentIdentity(session);
      const identityKey = session.identityKey();
      for (const queryId of toRun) {
        const query = session.queries.get(queryId);
        if (!query) continue;
        const argsText = JSON.stringify(query.argsJson);
        const cacheKey = `${query.path}\u0000${argsText}\u0000${identityKey}`;
        let outcome = results.get(cacheKey);
        if (!outcome) {
          outcome = await this.executor.runSubscribedQuery({ path: query.path, argsJson: query.argsJson, identity: caller.identity, allowInternal: caller.admin });
          results.set(cacheKey, outcome);
        }
        query.readSet = outcome.readSet;
        const resultKey = outcome.status === "success" ? `v${outcome.valueJson}` : `e${outcome.errorMessage}\u0000${outcome.errorDataJson ?? ""}`;
        if (resultKey === query.resultKey) continue;
        query.resultKey = resultKey;
        const logLines = JSON.stringify(outcome.logLines);
        if (outcome.status === "success") {
          modifications.push(`{"type":"QueryUpdated","queryId":${queryId},"value":${outcome.valueJson},"logLines":${logLines},"journal":null}`);
        } else {
          const errorData = outcome.errorDataJson === undefined ? "" : `,"errorData":${outcome.errorDataJson}`;
          modifications.push(`{"type":"QueryFailed","queryId":${queryId},"errorMessage":${JSON.stringify(outcome.errorMessage)},"logLines":${logLines},"journal":null${errorData}}`);
        }
      }
    }
    const end = { querySet: session.receivedQuerySet, identity: session.receivedIdentity, ts: ts > start.ts ? ts : start.ts };
    const versionChanged = end.querySet !== start.querySet || end.identity !== start.identity || end.ts !== start.ts;
    if (modifications.length === 0 && !versionChanged && !session.needsTransition) return;
    session.needsTransition = false;
    session.version = end;
    session.send(
      `{"type":"Transition","startVersion":${versionJson(start)},"endVersion":${versionJson(end)},` +
        `"modifications":[${modifications.join(",")}],"clientClockSkew":${session.clientClockSkew ?? "null"},"serverTs":${wallClockNanos()}}`,
    );
  }

  _tick() {
    const now = performance.now();
    for (const session of this.sessions) {
      if (now - session.lastReceivedAt > CLIENT_TIMEOUT_MS) {
        session.ws.terminate();
        continue;
      }
      if (now - session.lastSentAt >= HEARTBEAT_MS) session.send('{"type":"Ping"}');
      session.ws.ping();
    }
    const cutoff = Date.now() - SESSION_RESPONSES_TTL_MS;
    for (const [sessionId, entry] of this.sessionResponses) {
      if (entry.seenAt < cutoff) this.sessionResponses.delete(sessionId);
    }
  }
}
