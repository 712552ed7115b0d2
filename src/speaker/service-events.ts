// Which watch events of Services can change what a speaker does. A Service that has no IP in
// its status before an event and none after it announces nothing, forwards nothing and is in
// no record, whatever else changed: evaluating for it only opens the batch window (speaker.ts,
// OBJECT_BATCH_MS) that the controller's status write, landing ~10-20 ms after a Service's
// creation, then has to wait out (~85 ms measured before this filter, bench/RESULTS.md). Pure.

export class ServicesWithIPs {
  readonly #keys = new Set<string>();

  /**
   * Records a Service's state after a watch event (`hasIPs`: its status lists an IP; false for
   * a deletion) and says whether the event can change anything: it had IPs before or has now.
   */
  seen(key: string, hasIPs: boolean): boolean {
    const had = this.#keys.has(key);
    if (hasIPs) this.#keys.add(key);
    else this.#keys.delete(key);
    return had || hasIPs;
  }
}
