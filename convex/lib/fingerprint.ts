// The table fingerprint of docs/formats.md, shared with `seed verify`
// (seed/fingerprint.py): FNV-1a 64 over each row's canonical JSON, summed
// modulo 2^64. Both sides must agree byte for byte.

/** JSON with object keys sorted (by UTF-16 code units, JS's default order), no whitespace. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys((value as Record<string, unknown>)[key]);
    return sorted;
  }
  return value;
}

const encoder = new TextEncoder();

/**
 * FNV-1a 64-bit of the UTF-8 bytes, as four 16-bit limbs (little end first):
 * BigInt arithmetic per byte is far too slow for a 300k-row table.
 * The prime 0x100000001b3 is 2^40 + 0x1b3, so a multiply is h*0x1b3 + (h << 40).
 */
export function fnv1a64(text: string): bigint {
  const bytes = encoder.encode(text);
  let h0 = 0x2325, h1 = 0x8422, h2 = 0x9ce4, h3 = 0xcbf2;
  for (let i = 0; i < bytes.length; i++) {
    h0 ^= bytes[i];
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    const t2 = h2 * 0x1b3 + (h0 << 8) + (t1 >>> 16);
    const t3 = h3 * 0x1b3 + (h1 << 8) + (t2 >>> 16);
    h0 = t0 & 0xffff;
    h1 = t1 & 0xffff;
    h2 = t2 & 0xffff;
    h3 = t3 & 0xffff;
  }
  return (BigInt(h3) << 48n) | (BigInt(h2) << 32n) | (BigInt(h1) << 16n) | BigInt(h0);
}

const MASK_64 = (1n << 64n) - 1n;

/** Order-independent digest of many rows: the sum of their hashes mod 2^64. */
export class Digest {
  count = 0;
  private total = 0n;

  addRow(canonicalRow: unknown): void {
    this.count += 1;
    this.total = (this.total + fnv1a64(canonicalJson(canonicalRow))) & MASK_64;
  }

  get hex(): string {
    return this.total.toString(16).padStart(16, "0");
  }
}
