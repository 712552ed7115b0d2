// Every order in which a small scenario's objects can reach the speakers gives the same end
// state (the idea of Cilium's l2announcer permutation test): the speakers are
// level-triggered, so what they announce, record and report must not depend on whether the
// Service came before its pool or its endpoints before the advertisement. Each event is
// evaluated by every speaker before the next is written (a canary barrier), so every
// intermediate state is really seen, not batched away.
import { describe, expect, it } from "vitest";
import { PATHS } from "../api/vocabulary.ts";
import { advertisement, pool, SpeakerCluster, service, slice, waitUntil } from "./testkit.ts";

const IP = "192.0.2.10";

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) =>
    permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]),
  );
}

/**
 * Runs `fn` for every item, 8 at a time: each run is its own cluster and mostly waits (the
 * speakers' 100 ms batch window), so running them side by side costs little.
 */
async function each<T>(items: readonly T[], fn: (x: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let x = queue.shift(); x !== undefined; x = queue.shift()) await fn(x);
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

type Step = { name: string; apply: (c: SpeakerCluster) => void };

interface EndState {
  announcing: string[];
  record: string | undefined;
  /** NodeAnnouncing Events: which node said it announces for which Service. */
  announced: string[];
  conflicts: number;
}

async function run(
  nodes: Record<string, Record<string, string>>,
  steps: readonly Step[],
  done: (c: SpeakerCluster) => boolean,
): Promise<[EndState, EndState]> {
  const c = new SpeakerCluster();
  try {
    for (const [n, labels] of Object.entries(nodes)) c.putNode(n, labels);
    for (const n of Object.keys(nodes)) await c.startSpeaker(n);
    for (const [i, s] of steps.entries()) {
      s.apply(c);
      // Between steps a canary barrier; after the last one none: the last event alone must
      // bring the end state (a barrier would evaluate again and hide a lost event).
      if (i < steps.length - 1) await c.settle(1);
    }
    // Not reached in time: the comparison below names the order that went wrong.
    await waitUntil(() => done(c), 2000).catch(() => {});
    const end = state(c);
    await c.settle();
    // And it stays so.
    return [end, state(c)];
  } finally {
    await c.close();
  }
}

function state(c: SpeakerCluster): EndState {
  return {
    announcing: c.announcing(IP),
    record: c.recordOf(IP),
    announced: c
      .events("NodeAnnouncing")
      .map((e) => `${e.host} ${e.object}`)
      .sort(),
    conflicts: c.events("IPConflict").length,
  };
}

const POOL: Step = { name: "pool", apply: (c) => c.api.put(PATHS.ipAddressPools, pool()) };
const AD: Step = { name: "ad", apply: (c) => c.api.put(PATHS.l2Advertisements, advertisement()) };

describe("Permutations: the end state does not depend on the order events arrive in", () => {
  it("one speaker; pool, advertisement, Service, EndpointSlice in all 24 orders", async () => {
    const steps: Step[] = [
      POOL,
      AD,
      { name: "service", apply: (c) => c.api.put(PATHS.services, service("web", IP)) },
      { name: "slice", apply: (c) => c.api.put(PATHS.endpointSlices, slice("web", ["node-a"])) },
    ];
    await each(permutations(steps), async (order) => {
      const end = await run({ "node-a": {} }, order, (c) => c.recordOf(IP) !== undefined);
      const want = {
        announcing: ["node-a"],
        record: "node-a",
        announced: ["node-a shop/web"],
        conflicts: 0,
      };
      expect(end, order.map((s) => s.name).join(" > ")).toEqual([want, want]);
    });
  }, 60_000);

  it("two speakers, externalTrafficPolicy Local, endpoint on node-b only: node-b in all 24 orders", async () => {
    const steps: Step[] = [
      POOL,
      AD,
      { name: "service", apply: (c) => c.api.put(PATHS.services, service("web", IP, "Local")) },
      { name: "slice", apply: (c) => c.api.put(PATHS.endpointSlices, slice("web", ["node-b"])) },
    ];
    await each(permutations(steps), async (order) => {
      const end = await run(
        { "node-a": {}, "node-b": {} },
        order,
        (c) => c.recordOf(IP) !== undefined,
      );
      const want = {
        announcing: ["node-b"],
        record: "node-b",
        announced: ["node-b shop/web"],
        conflicts: 0,
      };
      expect(end, order.map((s) => s.name).join(" > ")).toEqual([want, want]);
    });
  }, 60_000);

  it("two speakers, advertisement for zone a, node-a labelled last or first: node-a in all 24 orders", async () => {
    const steps: Step[] = [
      {
        name: "ad",
        apply: (c) =>
          c.api.put(PATHS.l2Advertisements, advertisement([{ matchLabels: { zone: "a" } }])),
      },
      { name: "service", apply: (c) => c.api.put(PATHS.services, service("web", IP)) },
      {
        name: "slice",
        apply: (c) => c.api.put(PATHS.endpointSlices, slice("web", ["node-a", "node-b"])),
      },
      { name: "label", apply: (c) => c.putNode("node-a", { zone: "a" }) },
    ];
    await each(permutations(steps), async (order) => {
      const end = await run(
        { "node-a": {}, "node-b": { zone: "b" } },
        [POOL, ...order],
        (c) => c.recordOf(IP) !== undefined,
      );
      const want = {
        announcing: ["node-a"],
        record: "node-a",
        announced: ["node-a shop/web"],
        conflicts: 0,
      };
      expect(end, order.map((s) => s.name).join(" > ")).toEqual([want, want]);
    });
  }, 60_000);
});
