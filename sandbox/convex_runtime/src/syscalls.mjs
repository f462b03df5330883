// The `Convex` global that the `convex/server` package calls into
// (`Convex.syscall` / `Convex.asyncSyscall`): database reads and writes,
// auth, and actions calling queries and mutations — implemented over the
// runtime's own store for whichever function is running (execution.mjs).
import { currentExecution, SystemError } from "./execution.mjs";
import { paginate, QueryStream } from "./query.mjs";
import { validate } from "./validator.mjs";
import { checkValueLimits, jsonToConvex, MAX_DOCUMENT_BYTES } from "./values.mjs";

const DOCUMENT_SYSTEM_FIELDS = new Set(["_id", "_creationTime"]);

function requireExecution(op) {
  const execution = currentExecution();
  if (!execution) throw new Error(`Convex syscall ${op} called outside of a Convex function`);
  if (execution.closed) throw new SystemError("Error", "This function execution has already ended (it timed out).");
  return execution;
}

function requireDatabase(execution, op) {
  if (execution.kind === "action") {
    throw new Error(`${op} is not available in actions: use ctx.runQuery / ctx.runMutation`);
  }
}

function requireMutation(execution, op) {
  if (execution.kind !== "mutation") {
    throw new Error(`${op} can only be called from a mutation (this is a ${execution.kind})`);
  }
}

/** Throws the error Convex gives for a document it would refuse to store. */
function checkDocument(db, tableName, fields) {
  for (const name of Object.keys(fields)) {
    if (name.startsWith("_") && !DOCUMENT_SYSTEM_FIELDS.has(name)) {
      throw new Error(`Field name ${name} starts with a '_', which is reserved.`);
    }
  }
  checkValueLimits(fields);
  const schema = db.schema;
  if (schema === null || schema.schemaValidation === false) return;
  const table = db.schemaTables.get(tableName);
  if (!table) {
    throw new Error(`Failed to insert or update a document in table "${tableName}" because it does not match the schema: Table "${tableName}" is not in the schema.`);
  }
  const error = validate(fields, table.documentType, (t, id) => db.isIdOfTable(t, id));
  if (error) {
    throw new Error(`Failed to insert or update a document in table "${tableName}" because it does not match the schema: ${error}`);
  }
}

function checkSize(record) {
  if (record.size > MAX_DOCUMENT_BYTES) {
    throw new Error(`Document is too large (${record.size} bytes > maximum size ${MAX_DOCUMENT_BYTES} bytes).`);
  }
}

function userFields(doc) {
  const fields = {};
  for (const [k, v] of Object.entries(doc)) if (!DOCUMENT_SYSTEM_FIELDS.has(k)) fields[k] = v;
  return fields;
}

function documentFor(db, id, table, op) {
  const record = typeof id === "string" ? db.get(id) : undefined;
  if (!record || (table && record.table.name !== table)) {
    throw new Error(`${op} on nonexistent document ID ${JSON.stringify(id)}`);
  }
  return record;
}

/**
 * Installs globalThis.Convex. `runtime` gives the store (`db`) and the
 * executor that runs nested function calls (`runNested`, `runFromAction`).
 */
export function installSyscalls(runtime) {
  const { db } = runtime;

  const syscall = (op, argsJson) => {
    const execution = requireExecution(op);
    const args = JSON.parse(argsJson);
    switch (op) {
      case "1.0/queryStream": {
        requireDatabase(execution, "db.query");
        const queryId = execution.nextQueryId++;
        const stream = new QueryStream(db, args.query, execution.metrics);
        execution.readSet?.addStream(stream);
        execution.queries.set(queryId, stream);
        return JSON.stringify({ queryId });
      }
      case "1.0/queryCleanup":
        execution.queries.delete(args.queryId);
        return "{}";
      case "1.0/db/normalizeId": {
        const ok = typeof args.idString === "string" && db.isIdOfTable(args.table, args.idString);
        return JSON.stringify({ id: ok ? args.idString : null });
      }
      case "1.0/getSnapshotTs":
        return JSON.stringify(Date.now());
      default:
        throw new Error(`The sandbox runtime does not support syscall "${op}"`);
    }
  };

  const asyncSyscall = async (op, argsJson) => {
    const execution = requireExecution(op);
    const args = JSON.parse(argsJson);
    switch (op) {
      case "1.0/get": {
        requireDatabase(execution, "db.get");
        execution.metrics.countIndexRange();
        if (typeof args.id === "string") execution.readSet?.addDocument(args.id);
        const record = typeof args.id === "string" ? db.get(args.id) : undefined;
        if (!record || (args.table && record.table.name !== args.table)) return "null";
        execution.metrics.countRead(record.size);
        return record.json;
      }
      case "1.0/queryStreamNext": {
        const stream = execution.queries.get(args.queryId);
        if (!stream) throw new Error(`Query ${args.queryId} is not open`);
        const record = stream.next();
        return record === null ? '{"value":null,"done":true}' : `{"value":${record.json},"done":false}`;
      }
      case "1.0/queryPage": {
        requireDatabase(execution, "paginate");
        if (++execution.paginated > 1) {
          throw new Error("This query or mutation function ran multiple paginated queries. Convex only supports a single paginated query in each function.");
        }
        const result = paginate(db, execution.metrics, args, execution.readSet);
        const page = result.page.map((r) => r.json).join(",");
        return `{"page":[${page}],"isDone":${result.isDone},"continueCursor":${JSON.stringify(result.continueCursor)}}`;
      }
      case "1.0/insert": {
        requireMutation(execution, "db.insert");
        const value = jsonToConvex(args.value);
        checkDocument(db, args.table, value);
        const record = db.insert(args.table, value);
        checkSize(record);
        execution.metrics.countWrite(record.size);
        return JSON.stringify({ _id: record.id });
      }
      case "1.0/shallowMerge": {
        requireMutation(execution, "db.patch");
        const before = documentFor(db, args.id, args.table, "Patch");
        execution.metrics.countRead(before.size);
        const merged = userFields(before.value);
        for (const [key, json] of Object.entries(args.value)) {
          if (json !== null && typeof json === "object" && !Array.isArray(json) && "$undefined" in json) delete merged[key];
          else if (key === "_id" || key === "_creationTime") {
            if (jsonToConvex(json) !== before.value[key]) throw new Error(`Provided ${key} field does not match the document's ${key}`);
          } else merged[key] = jsonToConvex(json);
        }
        checkDocument(db, before.table.name, merged);
        const record = db.replace(before.id, merged);
        checkSize(record);
        execution.metrics.countWrite(record.size);
        return "{}";
      }
      case "1.0/replace": {
        requireMutation(execution, "db.replace");
        const before = documentFor(db, args.id, args.table, "Replace");
        execution.metrics.countRead(before.size);
        const value = jsonToConvex(args.value);
        for (const key of DOCUMENT_SYSTEM_FIELDS) {
          if (value[key] !== undefined && value[key] !== before.value[key]) {
            throw new Error(`Provided ${key} field does not match the document's ${key}`);
          }
        }
        const fields = userFields(value);
        checkDocument(db, before.table.name, fields);
        const record = db.replace(before.id, fields);
        checkSize(record);
        execution.metrics.countWrite(record.size);
        return "{}";
      }
      case "1.0/remove": {
        requireMutation(execution, "db.delete");
        const before = documentFor(db, args.id, args.table, "Delete");
        execution.metrics.countRead(before.size);
        db.delete(before.id);
        execution.metrics.countWrite(0);
        return "{}";
      }
      case "1.0/count": {
        requireDatabase(execution, "count");
        execution.readSet?.addTable(args.table);
        return JSON.stringify(db.tables.get(args.table)?.count ?? 0);
      }
      case "1.0/getUserIdentity":
        return JSON.stringify(execution.identity ?? null);
      case "1.0/runUdf":
        // ctx.runQuery / ctx.runMutation inside a query or mutation: same transaction.
        return await runtime.runNested(execution, args);
      case "1.0/actions/query":
        return await runtime.runFromAction(execution, "query", args);
      case "1.0/actions/mutation":
        return await runtime.runFromAction(execution, "mutation", args);
      case "1.0/actions/action":
        return await runtime.runFromAction(execution, "action", args);
      case "1.0/getFunctionMetadata":
        return JSON.stringify({ name: execution.path, componentPath: "" });
      case "1.0/getDeploymentMetadata":
        return JSON.stringify({ name: runtime.deploymentName, region: null, class: "s16" });
      case "1.0/getTransactionMetrics": {
        if (execution.kind === "action") throw new Error("getTransactionMetrics() can only be called from a query or mutation.");
        const m = execution.metrics;
        const l = m.limits;
        return JSON.stringify({
          bytesRead: { used: m.bytesRead, remaining: l.bytesRead - m.bytesRead },
          bytesWritten: { used: m.bytesWritten, remaining: l.bytesWritten - m.bytesWritten },
          databaseQueries: { used: m.indexRanges, remaining: l.indexRanges - m.indexRanges },
          documentsRead: { used: m.documentsRead, remaining: l.documentsRead - m.documentsRead },
          documentsWritten: { used: m.documentsWritten, remaining: l.documentsWritten - m.documentsWritten },
          functionsScheduled: { used: 0, remaining: 1000 },
          scheduledFunctionArgsBytes: { used: 0, remaining: 16 * 1024 * 1024 },
        });
      }
      default:
        throw new Error(`The sandbox runtime does not support async syscall "${op}"`);
    }
  };

  const jsSyscall = (op) => {
    throw new Error(`The sandbox runtime does not support js syscall "${op}"`);
  };

  globalThis.Convex = { syscall, asyncSyscall, jsSyscall };
}
