// Query execution over the store's ordered indexes: index ranges become a
// lower and an upper bound on the index key, found by binary search, and
// documents are produced lazily in index order, so `.take(20)` reads about
// 20 documents whatever the table's size.
import { compareKeys, compareValues, convexToJson, fieldValue, jsonToConvex } from "./values.mjs";

function decodeLiteral(json) {
  if (json !== null && typeof json === "object" && !Array.isArray(json) && "$undefined" in json) return undefined;
  return jsonToConvex(json);
}

// Index keys can hold `undefined` (a missing field), which JSON cannot.
export function encodeCursor(key) {
  return JSON.stringify(key.map((v) => (v === undefined ? { $undefined: null } : convexToJson(v))));
}

function decodeCursor(cursor) {
  let parsed;
  try {
    parsed = JSON.parse(cursor);
  } catch {
    parsed = null;
  }
  if (!Array.isArray(parsed)) throw new Error(`Invalid pagination cursor: ${JSON.stringify(cursor)}`);
  return parsed.map(decodeLiteral);
}

/** Compares the first bound.length elements of an index key with the bound. */
function compareToPrefix(entry, bound) {
  for (let i = 0; i < bound.length; i++) {
    const c = compareValues(entry[i], bound[i]);
    if (c !== 0) return c;
  }
  return 0;
}

function isSameValue(a, b) {
  return compareValues(a, b) === 0 && typeof a === typeof b;
}

function arithmetic(op, a, b) {
  if (typeof a !== typeof b || (typeof a !== "number" && typeof a !== "bigint")) {
    throw new Error(`Cannot apply ${op} to ${typeof a} and ${typeof b}`);
  }
  switch (op) {
    case "$add": return a + b;
    case "$sub": return a - b;
    case "$mul": return a * b;
    case "$div": return a / b;
    default: return a % b;
  }
}

/** Evaluates a serialised filter expression (filter_builder) against a document. */
export function evaluate(expr, doc) {
  const op = Object.keys(expr)[0];
  const arg = expr[op];
  switch (op) {
    case "$literal": return decodeLiteral(arg);
    case "$field": return fieldValue(doc, arg);
    case "$eq": return isSameValue(evaluate(arg[0], doc), evaluate(arg[1], doc));
    case "$neq": return !isSameValue(evaluate(arg[0], doc), evaluate(arg[1], doc));
    case "$lt": return compareValues(evaluate(arg[0], doc), evaluate(arg[1], doc)) < 0;
    case "$lte": return compareValues(evaluate(arg[0], doc), evaluate(arg[1], doc)) <= 0;
    case "$gt": return compareValues(evaluate(arg[0], doc), evaluate(arg[1], doc)) > 0;
    case "$gte": return compareValues(evaluate(arg[0], doc), evaluate(arg[1], doc)) >= 0;
    case "$add":
    case "$sub":
    case "$mul":
    case "$div":
    case "$mod":
      return arithmetic(op, evaluate(arg[0], doc), evaluate(arg[1], doc));
    case "$neg": {
      const value = evaluate(arg, doc);
      if (typeof value !== "number" && typeof value !== "bigint") throw new Error(`Cannot negate ${typeof value}`);
      return -value;
    }
    case "$and": return arg.every((e) => evaluate(e, doc) === true);
    case "$or": return arg.some((e) => evaluate(e, doc) === true);
    case "$not": return evaluate(arg, doc) !== true;
    default: throw new Error(`Unsupported filter expression ${op}`);
  }
}

/** The index and key bounds a query's source reads. */
function planSource(db, source) {
  if (source.type === "Search") throw new Error("Search indexes are not supported by the sandbox runtime");
  let tableName;
  let indexName;
  let range = [];
  if (source.type === "FullTableScan") {
    tableName = source.tableName;
    indexName = "by_creation_time";
  } else {
    [tableName, indexName] = source.indexName.split(".");
    range = source.range;
  }
  const table = db.tables.get(tableName);
  const order = source.order ?? "asc";
  if (table === undefined) {
    if (source.type === "FullTableScan" || indexName === "by_creation_time" || indexName === "by_id") {
      return { empty: true, order };
    }
    throw new Error(`Index ${tableName}.${indexName} not found.`);
  }
  const index = indexName === "by_id" ? null : table.indexes.get(indexName);
  if (index === undefined) {
    throw new Error(`Index ${tableName}.${indexName} not found.`);
  }
  if (index === null) throw new Error("Queries on the by_id index are not supported; use db.get");

  // Eq on a prefix of the fields, then at most one lower and one upper bound
  // on the next field, in index order — what IndexRangeBuilder allows.
  const fields = index.fields;
  const prefix = [];
  let lower = null;
  let upper = null;
  let position = 0;
  for (const expression of range) {
    const value = decodeLiteral(expression.value);
    if (expression.type === "Eq") {
      if (lower || upper || fields[position] !== expression.fieldPath) {
        throw new Error(`Uh oh! Index range on ${tableName}.${indexName} uses field ${expression.fieldPath} out of order`);
      }
      prefix.push(value);
      position++;
    } else {
      if (fields[position] !== expression.fieldPath) {
        throw new Error(`Uh oh! Index range on ${tableName}.${indexName} uses field ${expression.fieldPath} out of order`);
      }
      if (expression.type === "Gt" || expression.type === "Gte") {
        if (lower) throw new Error("Index range has two lower bounds");
        lower = { value, inclusive: expression.type === "Gte" };
      } else {
        if (upper) throw new Error("Index range has two upper bounds");
        upper = { value, inclusive: expression.type === "Lte" };
      }
    }
  }
  return {
    empty: false,
    index,
    order,
    lower: lower ? { key: [...prefix, lower.value], inclusive: lower.inclusive } : { key: prefix, inclusive: true },
    upper: upper ? { key: [...prefix, upper.value], inclusive: upper.inclusive } : { key: prefix, inclusive: true },
  };
}

export function aboveLower(entry, lower) {
  const c = compareToPrefix(entry, lower.key);
  return lower.inclusive ? c >= 0 : c > 0;
}

export function belowUpper(entry, upper) {
  const c = compareToPrefix(entry, upper.key);
  return upper.inclusive ? c <= 0 : c < 0;
}

/**
 * One open query (`db.query(...)` being iterated): yields document records
 * in index order, applying the query's filter and limit operators in order.
 */
export class QueryStream {
  constructor(db, query, metrics, startAfter = null) {
    this.db = db;
    this.metrics = metrics;
    this.plan = planSource(db, query.source);
    this.tableName = query.source.type === "FullTableScan" ? query.source.tableName : query.source.indexName.split(".")[0];
    this.operators = query.operators ?? [];
    this.limitCounts = this.operators.map(() => 0);
    this.done = this.plan.empty;
    this.lastKey = startAfter;
    this.startAfter = startAfter;
    this.position = null;
    this.version = -1;
    /** The last index key this stream has read, a document that ended it by a limit excepted. */
    this.coveredKey = null;
    /** Whether the whole range was read. */
    this.exhausted = false;
    metrics.countIndexRange();
  }

  /**
   * The part of the index this stream has read so far, as the read set a
   * subscription keeps: {tableName, index, lower, upper} (bounds as in the
   * plan), or null when nothing was read.
   */
  readInterval() {
    const plan = this.plan;
    if (plan.empty) return { tableName: this.tableName, index: null, lower: null, upper: null };
    const asc = plan.order === "asc";
    let { lower, upper } = plan;
    if (this.startAfter) {
      if (asc) lower = { key: this.startAfter, inclusive: false };
      else upper = { key: this.startAfter, inclusive: false };
    }
    if (!this.exhausted) {
      if (this.coveredKey === null) return null;
      if (asc) upper = { key: this.coveredKey, inclusive: true };
      else lower = { key: this.coveredKey, inclusive: true };
    }
    return { tableName: this.tableName, index: plan.index, lower, upper };
  }

  _list() {
    return this.plan.index.list;
  }

  /** Positions the cursor on the first entry not yet produced. */
  _seek() {
    const list = this._list();
    const { order, lower, upper } = this.plan;
    if (order === "asc") {
      this.position = this.lastKey
        ? list.seek(this.lastKey, true, compareKeys)
        : list.seek(lower.key, !lower.inclusive, compareToPrefix);
    } else {
      const after = this.lastKey
        ? list.seek(this.lastKey, false, compareKeys)
        : list.seek(upper.key, upper.inclusive, compareToPrefix);
      this.position = list.previous(after);
    }
    this.version = list.version;
  }

  /** The next index entry in range, or null. */
  _nextEntry() {
    const list = this._list();
    if (this.version !== list.version) this._seek();
    if (this.position === null) return null;
    const entry = list.entryAt(this.position);
    if (entry === undefined) return null;
    const { order, lower, upper } = this.plan;
    if (order === "asc" ? !belowUpper(entry, upper) : !aboveLower(entry, lower)) return null;
    this.position = order === "asc" ? list.next(this.position) : list.previous(this.position);
    this.lastKey = entry;
    return entry;
  }

  /** The next document record that passes the operators, or null when done. */
  next() {
    if (this.done) return null;
    for (;;) {
      const entry = this._nextEntry();
      if (entry === null) {
        this.done = true;
        this.exhausted = true;
        return null;
      }
      const record = this.db.get(entry[entry.length - 1]);
      this.metrics.countRead(record.size);
      const passes = this._passes(record.value);
      // A document past a limit was looked at but is not part of the result.
      if (this.done) return null;
      this.coveredKey = entry;
      if (passes) return record;
    }
  }

  _passes(doc) {
    for (let i = 0; i < this.operators.length; i++) {
      const operator = this.operators[i];
      if ("filter" in operator) {
        if (evaluate(operator.filter, doc) !== true) return false;
      } else if ("limit" in operator) {
        if (this.limitCounts[i] >= operator.limit) {
          this.done = true;
          return false;
        }
        this.limitCounts[i]++;
      }
    }
    return true;
  }
}

const END_CURSOR = "_end_cursor";

/** One page of a query (`.paginate()`), with Convex's result shape. */
export function paginate(db, metrics, { query, cursor, endCursor, pageSize, maximumRowsRead }, readSet = null) {
  if (cursor === END_CURSOR) return { page: [], isDone: true, continueCursor: END_CURSOR };
  const stream = new QueryStream(db, query, metrics, cursor ? decodeCursor(cursor) : null);
  readSet?.addStream(stream);
  const end = endCursor && endCursor !== END_CURSOR ? decodeCursor(endCursor) : null;
  const page = [];
  let scanned = 0;
  for (;;) {
    if (end === null && page.length >= pageSize) break;
    if (maximumRowsRead !== undefined && maximumRowsRead !== null && scanned >= maximumRowsRead) break;
    const before = stream.lastKey;
    const record = stream.next();
    scanned++;
    if (record === null) break;
    if (end !== null) {
      const c = compareKeys(stream.lastKey, end);
      if (stream.plan.order === "asc" ? c > 0 : c < 0) {
        stream.lastKey = before;
        break;
      }
    }
    page.push(record);
  }
  const isDone = stream.done;
  return {
    page,
    isDone,
    continueCursor: isDone && end === null ? END_CURSOR : stream.lastKey ? encodeCursor(stream.lastKey) : END_CURSOR,
  };
}
