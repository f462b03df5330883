// The document store: every table's documents by id, and for each index
// (by_creation_time, by_id and the schema's) an ordered list of keys
// [...indexed field values, _creationTime, _id]. Writes go straight to the
// store and into an undo log, which a failing mutation replays backwards;
// since functions run one at a time (see executor.mjs) nobody else can see
// a write before its mutation commits.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { newId, tableNumberOfId } from "./ids.mjs";
import { SortedList } from "./sorted_list.mjs";
import { compareKeys, convexToJson, fieldValue, jsonToConvex } from "./values.mjs";

const FIRST_TABLE_NUMBER = 10001;

function wallClockNanos() {
  return BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}
const SNAPSHOT_FORMAT = "convex-sandbox-snapshot/1";
export const SNAPSHOT_FILE = "documents.jsonl";

class Index {
  constructor(name, fields) {
    this.name = name;
    /** Indexed fields followed by the tie-breakers Convex appends. */
    this.fields = [...fields, "_creationTime", "_id"];
    this.userFieldCount = fields.length;
    this.list = new SortedList(compareKeys);
  }

  keyOf(doc) {
    const key = new Array(this.fields.length);
    for (let i = 0; i < this.userFieldCount; i++) key[i] = fieldValue(doc, this.fields[i]);
    key[this.userFieldCount] = doc._creationTime;
    key[this.userFieldCount + 1] = doc._id;
    return key;
  }
}

class Table {
  constructor(name, number, indexDefinitions) {
    this.name = name;
    this.number = number;
    this.count = 0;
    this.indexes = new Map();
    this.indexes.set("by_creation_time", new Index("by_creation_time", []));
    for (const { indexDescriptor, fields } of indexDefinitions) {
      this.indexes.set(indexDescriptor, new Index(indexDescriptor, fields));
    }
  }
}

/**
 * A stored document: its value (with _id and _creationTime) and the same
 * value as encoded JSON text, kept so reads need no re-serialisation.
 */
export class DocumentRecord {
  constructor(table, value, json) {
    this.table = table;
    this.value = value;
    this.json = json;
  }
  get id() {
    return this.value._id;
  }
  get size() {
    return this.json.length;
  }
}

export class Database {
  /** @param schema the `schema.export()` JSON, or null for a deployment without a schema. */
  constructor(schema) {
    this.schema = schema;
    this.tables = new Map();
    this.tablesByNumber = new Map();
    this.documents = new Map();
    this.lastCreationTime = 0;
    this.undoLog = null;
    /** Bumped on every committed change; the persister saves when it moved. */
    this.changeCounter = 0;
    /**
     * The timestamp of the latest commit, nanoseconds since the epoch
     * (Convex's `ts`): wall-clock based and strictly increasing, so it never
     * goes back across restarts unless the clock does.
     */
    this.ts = wallClockNanos();
    /** Called after each committed transaction that wrote: ({ts, changes}). */
    this.commitListeners = [];
    this.schemaTables = new Map((schema?.tables ?? []).map((t) => [t.tableName, t]));
    for (const tableName of this.schemaTables.keys()) this._createTable(tableName);
  }

  _createTable(name, number) {
    const assigned = number ?? Math.max(FIRST_TABLE_NUMBER - 1, ...this.tablesByNumber.keys()) + 1;
    const table = new Table(name, assigned, this.schemaTables.get(name)?.indexes ?? []);
    this.tables.set(name, table);
    this.tablesByNumber.set(assigned, table);
    return table;
  }

  /** The table for a write: tables outside a schema do not exist for functions. */
  tableForWrite(name) {
    const table = this.tables.get(name);
    if (table) return table;
    if (this.schema !== null) {
      throw new Error(`Failed to insert or update a document in table "${name}" because it does not match the schema: Table "${name}" is not in the schema.`);
    }
    if (!/^[a-zA-Z][a-zA-Z0-9_]{0,63}$/.test(name)) throw new Error(`Invalid table name: "${name}"`);
    return this._createTable(name);
  }

  tableOfId(id) {
    const number = tableNumberOfId(id);
    return number === null ? undefined : this.tablesByNumber.get(number);
  }

  isIdOfTable(tableName, id) {
    const table = this.tableOfId(id);
    return table !== undefined && table.name === tableName;
  }

  get(id) {
    return this.documents.get(id);
  }

  _nextCreationTime() {
    // Strictly increasing, with sub-millisecond steps like Convex's.
    const now = Date.now();
    this.lastCreationTime = now > this.lastCreationTime ? now : this.lastCreationTime + 1 / 1024;
    return this.lastCreationTime;
  }

  _put(id, before, after) {
    if (before) {
      for (const index of before.table.indexes.values()) index.list.delete(index.keyOf(before.value));
      before.table.count--;
    }
    if (after) {
      for (const index of after.table.indexes.values()) index.list.insert(index.keyOf(after.value));
      after.table.count++;
      this.documents.set(id, after);
    } else {
      this.documents.delete(id);
    }
    if (this.undoLog) this.undoLog.push({ id, before });
    this.changeCounter++;
  }

  /** Inserts a document (value without system fields); returns its record. */
  insert(tableName, value) {
    const table = this.tableForWrite(tableName);
    const id = newId(table.number);
    const doc = { _id: id, _creationTime: this._nextCreationTime(), ...value };
    const record = new DocumentRecord(table, doc, JSON.stringify(convexToJson(doc)));
    this._put(id, undefined, record);
    return record;
  }

  /** Replaces a document's fields, keeping its system fields. */
  replace(id, value) {
    const before = this.documents.get(id);
    if (!before) throw new Error(`Update on nonexistent document ID ${id}`);
    const doc = { _id: id, _creationTime: before.value._creationTime, ...value };
    const record = new DocumentRecord(before.table, doc, JSON.stringify(convexToJson(doc)));
    this._put(id, before, record);
    return record;
  }

  delete(id) {
    const before = this.documents.get(id);
    if (!before) throw new Error(`Delete on nonexistent document ID ${id}`);
    this._put(id, before, undefined);
  }

  beginTransaction() {
    if (this.undoLog) throw new Error("transactions do not nest");
    this.undoLog = [];
  }

  /**
   * Ends the running transaction, keeping its writes. Returns its commit
   * timestamp (the latest one when it wrote nothing) and tells the commit
   * listeners which documents changed: Map id → {table, before, after}
   * (records; undefined for an insert's before or a delete's after).
   */
  commit() {
    const log = this.undoLog;
    this.undoLog = null;
    if (!log || log.length === 0) return this.ts;
    const changes = new Map();
    for (const { id, before } of log) {
      if (!changes.has(id)) changes.set(id, { before, after: undefined });
    }
    for (const [id, change] of changes) {
      change.after = this.documents.get(id);
      change.table = (change.after ?? change.before).table;
    }
    const ts = this.nextTs();
    for (const listener of this.commitListeners) listener({ ts, changes });
    return ts;
  }

  /** A new commit timestamp, later than every earlier one. */
  nextTs() {
    const now = wallClockNanos();
    this.ts = now > this.ts ? now : this.ts + 1n;
    return this.ts;
  }

  /** Makes later timestamps exceed ts (a client has seen it, e.g. before a restart). */
  observeTs(ts) {
    if (ts > this.ts) this.ts = ts;
  }

  rollback() {
    this.rollbackTo(0);
    this.undoLog = null;
  }

  /** A point in the running transaction that rollbackTo can return to (nested mutations). */
  savepoint() {
    return this.undoLog ? this.undoLog.length : 0;
  }

  rollbackTo(savepoint) {
    const log = this.undoLog;
    if (!log) return;
    this.undoLog = null; // undoing must not log undo entries
    for (let i = log.length - 1; i >= savepoint; i--) {
      const { id, before } = log[i];
      this._put(id, this.documents.get(id), before);
    }
    log.length = savepoint;
    this.undoLog = log;
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * Writes every document to dir/documents.jsonl atomically (temporary file,
   * fsync, rename). The set of documents is captured synchronously first —
   * records are immutable, so later writes cannot change what is saved — and
   * the file is then written in chunks that yield to the event loop, so a
   * save does not stall requests. Call it between transactions only.
   */
  async save(dir) {
    if (this.undoLog) throw new Error("cannot save in the middle of a transaction");
    const header = {
      format: SNAPSHOT_FORMAT,
      lastCreationTime: this.lastCreationTime,
      tables: [...this.tables.values()].map((t) => ({ name: t.name, number: t.number })),
    };
    const records = Array.from(this.documents.values());
    mkdirSync(dir, { recursive: true });
    const path = join(dir, SNAPSHOT_FILE);
    const tmp = `${path}.tmp-${process.pid}`;
    const file = await open(tmp, "w", 0o600);
    try {
      await file.write(JSON.stringify(header) + "\n");
      const CHUNK = 2000;
      for (let start = 0; start < records.length; start += CHUNK) {
        let buffer = "";
        const end = Math.min(records.length, start + CHUNK);
        for (let i = start; i < end; i++) {
          const record = records[i];
          buffer += `{"t":${JSON.stringify(record.table.name)},"d":${record.json}}\n`;
        }
        await file.write(buffer);
      }
      await file.sync();
    } finally {
      await file.close();
    }
    renameSync(tmp, path);
    return records.length;
  }

  /** Loads dir/documents.jsonl if present; returns the number of documents. */
  load(dir) {
    const path = join(dir, SNAPSHOT_FILE);
    // A save interrupted by a crash leaves its temporary file behind.
    if (existsSync(dir)) {
      for (const name of readdirSync(dir)) if (name.startsWith(`${SNAPSHOT_FILE}.tmp-`)) rmSync(join(dir, name), { force: true });
    }
    if (!existsSync(path)) return 0;
    const lines = readFileSync(path, "utf8").split("\n");
    const header = JSON.parse(lines[0]);
    if (header.format !== SNAPSHOT_FORMAT) throw new Error(`${path}: unknown snapshot format ${header.format}`);
    // Keep each table's number so stored ids still name their table; tables
    // new in the schema since the snapshot get numbers after the stored ones.
    const storedNumbers = new Map(header.tables.map((t) => [t.name, t.number]));
    this.tablesByNumber.clear();
    for (const { name, number } of header.tables) {
      let table = this.tables.get(name);
      if (!table) {
        table = new Table(name, number, this.schemaTables.get(name)?.indexes ?? []);
        this.tables.set(name, table);
      }
      table.number = number;
      this.tablesByNumber.set(number, table);
    }
    for (const table of this.tables.values()) {
      if (storedNumbers.has(table.name)) continue;
      table.number = Math.max(FIRST_TABLE_NUMBER - 1, ...this.tablesByNumber.keys()) + 1;
      this.tablesByNumber.set(table.number, table);
    }
    this.lastCreationTime = header.lastCreationTime;
    let loaded = 0;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      if (line.length === 0) continue;
      const dataStart = line.indexOf(',"d":');
      const tableName = JSON.parse(line.slice(5, dataStart));
      const json = line.slice(dataStart + 5, line.length - 1);
      const value = jsonToConvex(JSON.parse(json));
      const table = this.tables.get(tableName);
      this._put(value._id, undefined, new DocumentRecord(table, value, json));
      loaded++;
    }
    this.changeCounter = 0;
    return loaded;
  }
}
