// What a query read, kept with each subscription so that a commit re-runs
// only the queries it could have changed: the index ranges its db.query
// streams covered (cut at the last document read when the stream stopped
// early, as `.first()` or `.take(n)` do), the documents it fetched by id,
// and whole tables (count, or a table that did not exist yet).
import { aboveLower, belowUpper } from "./query.mjs";

export class ReadSet {
  constructor() {
    this.streams = [];
    this.documentIds = new Set();
    this.wholeTables = new Set();
    this.intervals = null;
  }

  /** A db.query stream; its range is read when the query finishes. */
  addStream(stream) {
    this.streams.push(stream);
  }

  addDocument(id) {
    this.documentIds.add(id);
  }

  addTable(tableName) {
    this.wholeTables.add(tableName);
  }

  /** Fixes the intervals once the function has finished reading. */
  finish() {
    const intervals = new Map(); // tableName → [{index, lower, upper}]
    for (const stream of this.streams) {
      const interval = stream.readInterval();
      if (interval === null) continue;
      if (interval.index === null) {
        this.wholeTables.add(interval.tableName);
        continue;
      }
      let list = intervals.get(interval.tableName);
      if (!list) intervals.set(interval.tableName, (list = []));
      list.push(interval);
    }
    this.streams = [];
    this.intervals = intervals;
    return this;
  }

  /** The number of ranges and documents kept (for tests and diagnostics). */
  get size() {
    let n = this.documentIds.size + this.wholeTables.size;
    for (const list of this.intervals?.values() ?? []) n += list.length;
    return n;
  }

  /**
   * Whether a commit's changes (Map id → {table, before, after}, as
   * Database.commit reports them) touch what was read: a changed document's
   * old or new index key inside a read range, a fetched document changed,
   * or any change to a whole table read.
   */
  overlaps(changes) {
    if (this.intervals === null) this.finish();
    for (const [id, change] of changes) {
      const tableName = change.table.name;
      if (this.wholeTables.has(tableName) || this.documentIds.has(id)) return true;
      const ranges = this.intervals.get(tableName);
      if (!ranges) continue;
      for (const { index, lower, upper } of ranges) {
        for (const record of [change.before, change.after]) {
          if (record === undefined) continue;
          const key = index.keyOf(record.value);
          if (aboveLower(key, lower) && belowUpper(key, upper)) return true;
        }
      }
    }
    return false;
  }
}
