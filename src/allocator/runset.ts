// A set of bigint values stored as sorted, disjoint, non-adjacent runs. Allocation hands
// out the lowest free address, so used addresses cluster into few runs and memory follows
// the number of runs, while lookups stay O(log runs).

/** A set of bigints kept as sorted runs [start, end]. */
export class RunSet {
  #starts: bigint[] = [];
  #ends: bigint[] = [];
  #size = 0;

  /** Number of values in the set. */
  get size(): number {
    return this.#size;
  }

  /** Number of runs (for tests and diagnostics). */
  get runs(): number {
    return this.#starts.length;
  }

  // Index of the last run starting at or before v, or -1.
  #floor(v: bigint): number {
    let lo = 0;
    let hi = this.#starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#starts[mid] as bigint) <= v) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** Whether `v` is in the set. */
  has(v: bigint): boolean {
    return this.runEnd(v) !== undefined;
  }

  /** The last value of the run holding `v`, or undefined when `v` is not in the set. */
  runEnd(v: bigint): bigint | undefined {
    const i = this.#floor(v);
    if (i < 0) return undefined;
    const end = this.#ends[i] as bigint;
    return end >= v ? end : undefined;
  }

  /** Adds `v`; returns false if it was already present. */
  add(v: bigint): boolean {
    const i = this.#floor(v);
    if (i >= 0 && (this.#ends[i] as bigint) >= v) return false;
    const joinsLeft = i >= 0 && (this.#ends[i] as bigint) + 1n === v;
    const joinsRight = i + 1 < this.#starts.length && (this.#starts[i + 1] as bigint) - 1n === v;
    if (joinsLeft && joinsRight) {
      this.#ends[i] = this.#ends[i + 1] as bigint;
      this.#starts.splice(i + 1, 1);
      this.#ends.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.#ends[i] = v;
    } else if (joinsRight) {
      this.#starts[i + 1] = v;
    } else {
      this.#starts.splice(i + 1, 0, v);
      this.#ends.splice(i + 1, 0, v);
    }
    this.#size++;
    return true;
  }

  /** Removes `v`; returns false if it was absent. */
  delete(v: bigint): boolean {
    const i = this.#floor(v);
    if (i < 0) return false;
    const start = this.#starts[i] as bigint;
    const end = this.#ends[i] as bigint;
    if (end < v) return false;
    if (start === v && end === v) {
      this.#starts.splice(i, 1);
      this.#ends.splice(i, 1);
    } else if (start === v) {
      this.#starts[i] = v + 1n;
    } else if (end === v) {
      this.#ends[i] = v - 1n;
    } else {
      this.#ends[i] = v - 1n;
      this.#starts.splice(i + 1, 0, v + 1n);
      this.#ends.splice(i + 1, 0, end);
    }
    this.#size--;
    return true;
  }

  /** All values in ascending order (for tests; enumerates, so only for small sets). */
  *values(): Generator<bigint> {
    for (let i = 0; i < this.#starts.length; i++) {
      for (let v = this.#starts[i] as bigint; v <= (this.#ends[i] as bigint); v++) yield v;
    }
  }
}
