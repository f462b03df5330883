// Checks values against the validator JSON that `convex/values` validators
// export (`v.object(...).json`): function arguments, return values and
// documents written to a table with a schema.
import { compareValues, jsonToConvex } from "./values.mjs";

/** A validator in the `v.…(...)` notation, for error messages. */
export function describeValidator(validator) {
  switch (validator.type) {
    case "literal":
      return `v.literal(${JSON.stringify(validator.value)})`;
    case "id":
      return `v.id("${validator.tableName}")`;
    case "array":
      return `v.array(${describeValidator(validator.value)})`;
    case "union":
      return `v.union(${validator.value.map(describeValidator).join(", ")})`;
    case "record":
      return `v.record(${describeValidator(validator.keys)}, ${describeValidator(validator.values.fieldType)})`;
    case "object": {
      const fields = Object.entries(validator.value).map(([name, field]) => {
        const inner = describeValidator(field.fieldType);
        return `${name}: ${field.optional ? `v.optional(${inner})` : inner}`;
      });
      return `v.object({${fields.join(", ")}})`;
    }
    default:
      return `v.${validator.type === "bigint" ? "int64" : validator.type === "number" ? "float64" : validator.type}()`;
  }
}

function describeValue(value) {
  try {
    return JSON.stringify(value, (_k, x) => (typeof x === "bigint" ? `${x}n` : x instanceof ArrayBuffer ? "<bytes>" : x));
  } catch {
    return String(value);
  }
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof ArrayBuffer);
}

/**
 * null when `value` matches `validator`, else the error message Convex gives.
 * `isId(tableName, value)` decides whether a string is an id of that table.
 */
export function validate(value, validator, isId, path = "") {
  const mismatch = () =>
    `Value does not match validator.\nPath: ${path || "."}\nValue: ${describeValue(value)}\nValidator: ${describeValidator(validator)}`;
  switch (validator.type) {
    case "any":
      return null;
    case "null":
      return value === null ? null : mismatch();
    case "number":
      return typeof value === "number" ? null : mismatch();
    case "bigint":
      return typeof value === "bigint" ? null : mismatch();
    case "boolean":
      return typeof value === "boolean" ? null : mismatch();
    case "string":
      return typeof value === "string" ? null : mismatch();
    case "bytes":
      return value instanceof ArrayBuffer ? null : mismatch();
    case "literal": {
      const expected = jsonToConvex(validator.value);
      return compareValues(value, expected) === 0 && typeof value === typeof expected ? null : mismatch();
    }
    case "id":
      return typeof value === "string" && isId(validator.tableName, value)
        ? null
        : `Value does not match validator.\nPath: ${path || "."}\nValue: ${describeValue(value)}\nValidator: ${describeValidator(validator)}`;
    case "array": {
      if (!Array.isArray(value)) return mismatch();
      for (let i = 0; i < value.length; i++) {
        const error = validate(value[i], validator.value, isId, `${path}[${i}]`);
        if (error) return error;
      }
      return null;
    }
    case "record": {
      if (!isPlainObject(value)) return mismatch();
      for (const [key, item] of Object.entries(value)) {
        if (item === undefined) continue;
        const keyError = validate(key, validator.keys, isId, `${path}.${key}`);
        if (keyError) return keyError;
        const error = validate(item, validator.values.fieldType, isId, `${path}.${key}`);
        if (error) return error;
      }
      return null;
    }
    case "object": {
      if (!isPlainObject(value)) return mismatch();
      for (const [name, field] of Object.entries(validator.value)) {
        if (value[name] === undefined) {
          if (field.optional) continue;
          return (
            `Object is missing the required field \`${name}\`. Consider wrapping the field validator in \`v.optional(...)\` if this is expected.\n\n` +
            `Object: ${describeValue(value)}\nValidator: ${describeValidator(validator)}`
          );
        }
        const error = validate(value[name], field.fieldType, isId, `${path}.${name}`);
        if (error) return error;
      }
      for (const name of Object.keys(value)) {
        if (value[name] !== undefined && !(name in validator.value)) {
          return (
            `Object contains extra field \`${name}\` that is not in the validator.\n\n` +
            `Object: ${describeValue(value)}\nValidator: ${describeValidator(validator)}`
          );
        }
      }
      return null;
    }
    case "union": {
      for (const member of validator.value) {
        if (validate(value, member, isId, path) === null) return null;
      }
      return mismatch();
    }
    default:
      return `Unsupported validator type ${validator.type}`;
  }
}
