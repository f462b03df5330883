// Document ids in Convex's shape: base32 of (varint table number, 16 random
// bytes, 2-byte Fletcher-16 checksum), so clients see opaque 31–32 character
// strings and `db.normalizeId` can tell which table an id belongs to.
import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const DECODE = new Map([...ALPHABET].map((c, i) => [c, i]));
const RANDOM_BYTES = 16;

function varint(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function fletcher16(bytes) {
  let a = 0;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 255;
    b = (b + a) % 255;
  }
  return [b, a];
}

function base32Encode(bytes) {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

function base32Decode(text) {
  const out = [];
  let buffer = 0;
  let bits = 0;
  for (const char of text) {
    const digit = DECODE.get(char);
    if (digit === undefined) return null;
    buffer = (buffer << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

const pool = Buffer.alloc(RANDOM_BYTES * 4096);
let poolOffset = pool.length;

function randomBytes() {
  if (poolOffset >= pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + RANDOM_BYTES);
  poolOffset += RANDOM_BYTES;
  return bytes;
}

export function newId(tableNumber) {
  const body = [...varint(tableNumber), ...randomBytes()];
  return base32Encode([...body, ...fletcher16(body)]);
}

/** The table number an id string encodes, or null when it is not a valid id. */
export function tableNumberOfId(id) {
  if (typeof id !== "string" || id.length < 31 || id.length > 37) return null;
  const bytes = base32Decode(id);
  if (bytes === null || bytes.length < RANDOM_BYTES + 3) return null;
  const body = bytes.slice(0, bytes.length - 2);
  const [b, a] = fletcher16(body);
  if (bytes[bytes.length - 2] !== b || bytes[bytes.length - 1] !== a) return null;
  let n = 0;
  let shift = 0;
  let i = 0;
  for (; i < body.length; i++) {
    n |= (body[i] & 0x7f) << shift;
    shift += 7;
    if ((body[i] & 0x80) === 0) break;
  }
  if (body.length - i - 1 !== RANDOM_BYTES) return null;
  return n;
}
