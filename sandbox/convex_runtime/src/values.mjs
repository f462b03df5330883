// Convex values as the runtime holds them (the `convex/values` JS forms:
// null, bigint, number, boolean, string, ArrayBuffer, arrays, plain objects),
// their total order (used by every index), the two wire formats, and the
// value limits Convex enforces.
import { convexToJson, jsonToConvex } from "convex/values";

export { convexToJson, jsonToConvex };

export const MAX_ARRAY_LENGTH = 8192;
export const MAX_OBJECT_FIELDS = 1024;
export const MAX_NESTING_DEPTH = 16;
export const MAX_DOCUMENT_BYTES = 1 << 20;

// Rank of each type in Convex's value order; a missing field (undefined)
// sorts before null, which is what index keys of absent fields need.
function typeRank(value) {
  if (value === undefined) return 0;
  if (value === null) return 1;
  switch (typeof value) {
    case "bigint": return 2;
    case "number": return 3;
    case "boolean": return 4;
    case "string": return 5;
    default:
      if (value instanceof ArrayBuffer) return 6;
      if (Array.isArray(value)) return 7;
      return 8;
  }
}

function compareNumbers(a, b) {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) {
    // -0 before +0, as a total order on floats does.
    if (a === 0 && Object.is(a, -0) !== Object.is(b, -0)) return Object.is(a, -0) ? -1 : 1;
    return 0;
  }
  // At least one NaN: NaN sorts after every number.
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
}

function compareBytes(a, b) {
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return x.length - y.length < 0 ? -1 : x.length === y.length ? 0 : 1;
}

/** Convex's total order over values. */
export function compareValues(a, b) {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 0:
    case 1:
      return 0;
    case 2:
    case 5:
      return a < b ? -1 : a > b ? 1 : 0;
    case 3:
      return compareNumbers(a, b);
    case 4:
      return a === b ? 0 : a ? 1 : -1;
    case 6:
      return compareBytes(a, b);
    case 7: {
      const n = Math.min(a.length, b.length);
      for (let i = 0; i < n; i++) {
        const c = compareValues(a[i], b[i]);
        if (c !== 0) return c;
      }
      return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
    }
    default: {
      const ka = Object.keys(a).filter((k) => a[k] !== undefined).sort();
      const kb = Object.keys(b).filter((k) => b[k] !== undefined).sort();
      const n = Math.min(ka.length, kb.length);
      for (let i = 0; i < n; i++) {
        if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
        const c = compareValues(a[ka[i]], b[kb[i]]);
        if (c !== 0) return c;
      }
      return ka.length === kb.length ? 0 : ka.length < kb.length ? -1 : 1;
    }
  }
}

/** Element-wise order of index keys (arrays of values). */
export function compareKeys(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    // Fast path for the common string/number fields.
    if (typeof x === typeof y && (typeof x === "string" || (typeof x === "number" && x === x && y === y))) {
      if (x < y) return -1;
      if (x > y) return 1;
      if (typeof x === "number" && x === 0 && y === 0) {
        const c = compareNumbers(x, y);
        if (c !== 0) return c;
      }
      continue;
    }
    const c = compareValues(x, y);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** The value at a dotted field path ("a.b"), or undefined. */
export function fieldValue(doc, fieldPath) {
  if (fieldPath.indexOf(".") === -1) return doc[fieldPath];
  let value = doc;
  for (const part of fieldPath.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof ArrayBuffer) return undefined;
    value = value[part];
  }
  return value;
}

function base64ToBytes(text) {
  return Buffer.from(text, "base64");
}

// Encoded JSON (`convex_encoded_json`) → clean JSON (`json`): only the
// special objects ($integer, $float, $bytes) differ between the two.
function encodedToClean(value) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(encodedToClean);
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0].startsWith("$")) {
    const payload = value[keys[0]];
    if (keys[0] === "$integer") return base64ToBytes(payload).readBigInt64LE(0).toString();
    if (keys[0] === "$float") {
      const f = base64ToBytes(payload).readDoubleLE(0);
      return Number.isNaN(f) ? "NaN" : f === Infinity ? "Infinity" : f === -Infinity ? "-Infinity" : 0;
    }
    if (keys[0] === "$bytes") return payload;
  }
  const out = {};
  for (const key of keys) out[key] = encodedToClean(value[key]);
  return out;
}

/** Re-encodes an encoded-JSON string in the requested output format. */
export function exportJsonString(encoded, format) {
  if (format === "convex_encoded_json") return encoded;
  // Field names cannot start with "$", so without a "$" there is nothing special.
  if (encoded.indexOf("$") === -1) return encoded;
  return JSON.stringify(encodedToClean(JSON.parse(encoded)));
}

/** The output formats Convex accepts, by every name it accepts. */
export function parseFormat(format, defaultFormat) {
  if (format === undefined || format === null) return defaultFormat;
  switch (format) {
    case "json":
    case "convex_clean_json":
      return "json";
    case "convex_encoded_json":
    case "convex_json":
      return "convex_encoded_json";
    case "export_json":
      return "json";
    default:
      return null;
  }
}

/**
 * Throws when a value breaks a limit Convex enforces on every value:
 * arrays of at most 8192 items, objects of at most 1024 fields, nesting
 * depth 16, field names that are non-empty, ASCII-printable-ish and do not
 * start with "$".
 */
export function checkValueLimits(value, depth = 0) {
  if (value === null || typeof value !== "object" || value instanceof ArrayBuffer) return;
  if (depth > MAX_NESTING_DEPTH) {
    throw new Error(`Value is too nested (nested depth > ${MAX_NESTING_DEPTH})`);
  }
  if (Array.isArray(value)) {
    if (value.length > MAX_ARRAY_LENGTH) {
      throw new Error(`Array length is too long (${value.length} > maximum length ${MAX_ARRAY_LENGTH})`);
    }
    for (const item of value) checkValueLimits(item, depth + 1);
    return;
  }
  const keys = Object.keys(value);
  if (keys.length > MAX_OBJECT_FIELDS) {
    throw new Error(`Object has too many fields (${keys.length} > maximum number ${MAX_OBJECT_FIELDS})`);
  }
  for (const key of keys) {
    if (key.length === 0) throw new Error("Empty field names are disallowed.");
    if (key.startsWith("$")) throw new Error(`Field name ${key} starts with a '$', which is reserved.`);
    checkValueLimits(value[key], depth + 1);
  }
}
