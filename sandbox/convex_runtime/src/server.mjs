// The deployment's two HTTP faces: the API port (`/api/...`, `/version`,
// and HTTP actions under `/http/...`) and the site port (HTTP actions at
// the root, like `<name>.convex.site`). Responses follow Convex's wire
// format: function outcomes are HTTP 200 with status "success"/"error";
// request problems are non-200 with {code, message}.
import { createServer } from "node:http";
import { performance } from "node:perf_hooks";
import { HttpError } from "./auth.mjs";
import { Executor } from "./executor.mjs";
import { exportJsonString, parseFormat } from "./values.mjs";

export const RUNTIME_VERSION = "1.48.0-sandbox";
const MAX_API_BODY_BYTES = 16 * 1024 * 1024 + 2000;
const MAX_HTTP_ACTION_BODY_BYTES = 20 * 1024 * 1024;

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, "PayloadTooLarge", `Request body is larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res, status, body, contentType, extraHeaders = {}) {
  const payload = typeof body === "string" ? Buffer.from(body) : body;
  res.writeHead(status, { "content-type": contentType, "content-length": payload.length, ...extraHeaders });
  res.end(payload);
}

function sendError(res, error) {
  // The client went away mid-request (Convex: 408 ClientDisconnect): nobody to answer.
  if (error?.code === "ECONNRESET" || res.destroyed || res.writableEnded) return;
  if (error instanceof HttpError) {
    send(res, error.status, JSON.stringify({ code: error.code, message: error.message }), "application/json");
  } else {
    console.error("convex-sandbox: internal error:", error);
    send(res, 500, JSON.stringify({ code: "InternalServerError", message: "Your request couldn't be completed. Try again later." }), "application/json");
  }
}

/**
 * `Server-Timing: exec;dur=<ms>`: how long the function ran inside the
 * runtime (waiting for the store, reading the request and writing the
 * response excluded). Hosted Convex sends no such header.
 */
function serverTiming(execMs) {
  return { "server-timing": `exec;dur=${execMs.toFixed(1)}` };
}

// Old clients (npm <= 1.4.1, python <= 0.5.0) expect encoded JSON by default;
// anything else, including no Convex-Client header, gets clean JSON.
function defaultFormat(clientHeader) {
  const match = /^(npm|python|python-convex)-(\d+)\.(\d+)\.(\d+)/.exec(clientHeader ?? "");
  if (!match) return "json";
  const version = [Number(match[2]), Number(match[3]), Number(match[4])];
  const limit = match[1] === "npm" ? [1, 4, 1] : [0, 5, 0];
  for (let i = 0; i < 3; i++) {
    if (version[i] !== limit[i]) return version[i] < limit[i] ? "convex_encoded_json" : "json";
  }
  return "convex_encoded_json";
}

function parseJsonBody(req, body) {
  const contentType = req.headers["content-type"] ?? "";
  if (!contentType.toLowerCase().includes("application/json")) {
    throw new HttpError(400, "BadJsonBody", "Expected request with `Content-Type: application/json`");
  }
  try {
    const parsed = JSON.parse(body.toString("utf8"));
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("expected a JSON object");
    return parsed;
  } catch (error) {
    throw new HttpError(400, "BadJsonBody", `Failed to deserialize the JSON body into the target type: ${error.message}`);
  }
}

// `args` is the named-args object, or the legacy one-element array [args].
function argsFrom(body) {
  const args = body.args ?? {};
  if (Array.isArray(args)) {
    if (args.length !== 1) throw new HttpError(400, "BadJsonBody", `Expected exactly one argument object, got ${args.length}`);
    return args[0];
  }
  return args;
}

export class ConvexHttpServer {
  constructor({ executor, authenticator, project, host, port, sitePort, deploymentName, sync = null }) {
    this.executor = executor;
    this.sync = sync;
    this.authenticator = authenticator;
    this.project = project;
    this.host = host;
    this.port = port;
    this.sitePort = sitePort;
    this.deploymentName = deploymentName;
    this.servers = [];
  }

  async listen() {
    const api = createServer((req, res) => this._handleApi(req, res));
    const site = createServer((req, res) => this._handleHttpAction(req, res, req.url));
    for (const server of [api, site]) {
      server.keepAliveTimeout = 65_000;
      server.headersTimeout = 66_000;
    }
    // The sync protocol's WebSocket (/api/sync, /api/<client version>/sync).
    api.on("upgrade", (req, socket, head) => {
      if (this.sync?.handleUpgrade(req, socket, head)) return;
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" +
        JSON.stringify({ code: "NotFound", message: `No WebSocket route for ${req.url}` }));
    });
    await Promise.all([
      new Promise((resolve, reject) => api.once("error", reject).listen(this.port, this.host, resolve)),
      new Promise((resolve, reject) => site.once("error", reject).listen(this.sitePort, this.host, resolve)),
    ]);
    this.port = api.address().port;
    this.sitePort = site.address().port;
    this.servers = [api, site];
  }

  async close() {
    this.sync?.close();
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections?.();
          }),
      ),
    );
  }

  get siteOrigin() {
    return `http://${this.host}:${this.sitePort}`;
  }

  async _handleApi(req, res) {
    try {
      const url = new URL(req.url, "http://localhost");
      const path = url.pathname;
      if (path.startsWith("/http/") || path === "/http") {
        return await this._handleHttpAction(req, res, req.url.slice("/http".length) || "/");
      }
      if (req.method === "GET" || req.method === "HEAD") {
        if (path === "/version") return send(res, 200, RUNTIME_VERSION, "text/plain; charset=utf-8");
        if (path === "/instance_name") return send(res, 200, this.deploymentName, "text/plain; charset=utf-8");
        if (path === "/") return send(res, 200, "This Convex deployment is running. See https://docs.convex.dev/.", "text/plain; charset=utf-8");
        if (path === "/api/query") return await this._handleGetQuery(req, res, url);
      }
      if (req.method === "POST" && path === "/api/query_ts") {
        // ConvexHttpClient.consistentQuery asks for a snapshot timestamp first.
        const ts = Buffer.alloc(8);
        ts.writeBigInt64LE(BigInt(Date.now()) * 1_000_000n);
        return send(res, 200, JSON.stringify({ ts: { $integer: ts.toString("base64") } }), "application/json");
      }
      if (req.method === "POST") {
        const route = path.match(/^\/api\/(query|query_at_ts|mutation|action|function|query_batch|run\/.+)$/);
        if (route) {
          const body = parseJsonBody(req, await readBody(req, MAX_API_BODY_BYTES));
          return await this._handleApiCall(req, res, route[1], body, url);
        }
      }
      send(res, 404, JSON.stringify({ code: "NotFound", message: `No route for ${req.method} ${path}` }), "application/json");
    } catch (error) {
      sendError(res, error);
    }
  }

  async _auth(req, url) {
    const header = req.headers.authorization ?? (url.searchParams.get("adminKey") ? `Convex ${url.searchParams.get("adminKey")}` : undefined);
    return await this.authenticator.authenticate(header);
  }

  async _handleGetQuery(req, res, url) {
    let args = {};
    const argsParam = url.searchParams.get("args");
    if (argsParam !== null) {
      try {
        args = JSON.parse(argsParam);
      } catch (error) {
        throw new HttpError(400, "BadJsonBody", `Failed to parse args: ${error.message}`);
      }
    }
    const body = { path: url.searchParams.get("path"), args, format: url.searchParams.get("format") ?? undefined };
    return await this._handleApiCall(req, res, "query", body, url);
  }

  async _handleApiCall(req, res, route, body, url) {
    const { admin, identity } = await this._auth(req, url);
    const format = parseFormat(body.format, route.startsWith("run/") ? "json" : defaultFormat(req.headers["convex-client"]));
    if (format === null) throw new HttpError(400, "BadRequest", `Invalid format: ${JSON.stringify(body.format)}`);
    const exportValue = (encoded) => exportJsonString(encoded, format);

    if (route === "query_batch") {
      if (!Array.isArray(body.queries)) throw new HttpError(400, "BadJsonBody", "Expected `queries` to be an array");
      const results = [];
      let execMs = 0;
      for (const query of body.queries) {
        const queryFormat = parseFormat(query.format, format) ?? format;
        const outcome = await this.executor.call({ path: query.path, argsJson: argsFrom(query), identity, allowInternal: admin, expectedKind: "query" });
        execMs += outcome.execMs;
        results.push(Executor.envelope(outcome, (encoded) => exportJsonString(encoded, queryFormat)));
      }
      return send(res, 200, `{"results":[${results.join(",")}]}`, "application/json", serverTiming(execMs));
    }

    let path = body.path;
    let expectedKind = null;
    if (route.startsWith("run/")) {
      // /api/run/messages/list → messages:list (the last segment is the export).
      const segments = route.slice(4).split("/").filter(Boolean);
      path = `${segments.slice(0, -1).join("/")}:${segments[segments.length - 1]}`;
    } else if (route === "function") {
      if (!admin) {
        throw new HttpError(403, "BadDeployKey", "This endpoint requires an admin key: `Authorization: Convex <admin key>`");
      }
    } else {
      // The store keeps no history: a query "at" a timestamp reads the latest state.
      expectedKind = route === "query_at_ts" ? "query" : route;
    }
    if (typeof path !== "string") throw new HttpError(400, "BadJsonBody", "Failed to deserialize the JSON body into the target type: missing field `path`");
    const outcome = await this.executor.call({ path, argsJson: argsFrom(body), identity, allowInternal: admin, expectedKind });
    send(res, 200, Executor.envelope(outcome, exportValue), "application/json", serverTiming(outcome.execMs));
  }

  async _handleHttpAction(req, res, pathAndQuery) {
    try {
      const router = this.project.router;
      const url = new URL(pathAndQuery, this.siteOrigin);
      const method = req.method === "HEAD" ? "GET" : req.method;
      const match = router ? router.lookup(url.pathname, method) : null;
      if (!match) {
        return send(res, 404, `No HttpAction routed for ${url.pathname}`, "text/plain; charset=utf-8");
      }
      const hasBody = method !== "GET";
      const body = hasBody ? await readBody(req, MAX_HTTP_ACTION_BODY_BYTES) : undefined;
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (Array.isArray(value)) for (const v of value) headers.append(name, v);
        else if (value !== undefined) headers.set(name, value);
      }
      // An Authorization header is tried as Convex auth; a bad one just leaves no identity.
      let identity = null;
      if (req.headers.authorization) {
        try {
          identity = (await this.authenticator.authenticate(req.headers.authorization)).identity;
        } catch {
          identity = null;
        }
      }
      const request = new Request(url, { method, headers, body: body && body.length ? body : undefined });
      let response;
      let payload;
      const startedAt = performance.now();
      try {
        response = await this.executor.runHttpAction(match[0], request, identity);
        payload = Buffer.from(await response.arrayBuffer());
      } catch (error) {
        const message = `Uncaught ${error?.name ?? "Error"}: ${error?.message ?? String(error)}`;
        console.error(`convex-sandbox: HTTP action ${method} ${url.pathname} failed: ${message}`);
        return send(res, 500, JSON.stringify({ code: "FunctionError", message }), "application/json", serverTiming(performance.now() - startedAt));
      }
      const execMs = performance.now() - startedAt;
      if (req.method === "HEAD") payload = Buffer.alloc(0);
      const outHeaders = {};
      response.headers.forEach((value, name) => {
        if (name !== "content-length") outHeaders[name] = value;
      });
      const setCookies = response.headers.getSetCookie?.() ?? [];
      if (setCookies.length) outHeaders["set-cookie"] = setCookies;
      outHeaders["content-length"] = payload.length;
      Object.assign(outHeaders, serverTiming(execMs));
      res.writeHead(response.status, outHeaders);
      res.end(payload);
    } catch (error) {
      sendError(res, error);
    }
  }
}
