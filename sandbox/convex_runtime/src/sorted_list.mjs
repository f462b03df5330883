// An ordered multiset of index keys: a list of sorted chunks. Seeking is a
// binary search over the chunks' last keys and then inside one chunk
// (O(log n)); inserting or deleting moves at most one chunk's worth of
// entries, so loading 300,000 rows stays fast where one flat sorted array
// would move half the array on every insert.
const MAX_CHUNK = 512;

export class SortedList {
  constructor(compare) {
    this.compare = compare;
    this.chunks = [];
    this.size = 0;
    /** Bumped on every change so open cursors know to re-seek. */
    this.version = 0;
  }

  /** Index of the first chunk whose last key is >= key (or, strict, > key). */
  _chunkFor(key, strict) {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid];
      const c = this.compare(chunk[chunk.length - 1], key);
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  _offsetIn(chunk, key, strict) {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.compare(chunk[mid], key);
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(key) {
    this.version++;
    this.size++;
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      return;
    }
    let ci = this._chunkFor(key, true);
    if (ci === this.chunks.length) ci--;
    const chunk = this.chunks[ci];
    chunk.splice(this._offsetIn(chunk, key, true), 0, key);
    if (chunk.length > MAX_CHUNK) this.chunks.splice(ci + 1, 0, chunk.splice(MAX_CHUNK >>> 1));
  }

  /** Removes one entry equal to key; returns whether there was one. */
  delete(key) {
    const ci = this._chunkFor(key, false);
    if (ci === this.chunks.length) return false;
    const chunk = this.chunks[ci];
    const offset = this._offsetIn(chunk, key, false);
    if (offset >= chunk.length || this.compare(chunk[offset], key) !== 0) return false;
    chunk.splice(offset, 1);
    if (chunk.length === 0) this.chunks.splice(ci, 1);
    this.version++;
    this.size--;
    return true;
  }

  /**
   * Position [chunk, offset] of the first entry >= bound (strict: > bound),
   * where `compareToBound(entry, bound)` may compare a prefix only.
   */
  seek(bound, strict, compareToBound = this.compare) {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid];
      const c = compareToBound(chunk[chunk.length - 1], bound);
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.chunks.length) return [lo, 0];
    const chunk = this.chunks[lo];
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      const c = compareToBound(chunk[mid], bound);
      if (c < 0 || (strict && c === 0)) a = mid + 1;
      else b = mid;
    }
    return [lo, a];
  }

  entryAt([ci, offset]) {
    const chunk = this.chunks[ci];
    return chunk === undefined ? undefined : chunk[offset];
  }

  next([ci, offset]) {
    if (ci >= this.chunks.length) return [ci, 0];
    return offset + 1 < this.chunks[ci].length ? [ci, offset + 1] : [ci + 1, 0];
  }

  /** The position before p, or null at the start. */
  previous([ci, offset]) {
    if (offset > 0) return [ci, offset - 1];
    if (ci === 0) return null;
    return [ci - 1, this.chunks[ci - 1].length - 1];
  }

  *all() {
    for (const chunk of this.chunks) yield* chunk;
  }
}
