// End-to-end: rotating the heartbeat key (issue 16, finding 9) with real speakers on a LAN of
// network namespaces. Each node reads its own copy of the key files, as each node's kubelet
// updates its own copy of the Secret at its own time; the copies are changed one node at a
// time, with the README's three steps, and each speaker is told to read them again at once
// (SIGHUP). No speaker may declare a peer dead meanwhile, and the Service keeps its node.
// A rotation that skips the steps (a new key on one node only) must make its peers declare
// it dead: that shows the check can fail.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { E2E_SUBNET, POOL_CIDR } from "../lab/addresses.ts";
import { destroyStale, Lab, randomPrefix } from "../lab/lab.ts";
import { listNetns } from "../lab/net.ts";
import { sleep, waitFor } from "../support/kube.ts";

if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}

const OLD = "the old heartbeat key, 32 bytes!";
const NEW = "the new heartbeat key, 32 bytes!";
const ROGUE = "a key only one node has, 32 byte";

describe("heartbeat key rotation", () => {
  const prefix = randomPrefix("ilbkey");
  let lab: Lab;
  let workDir = "";
  const keyFile = (node: string) => join(workDir, `keys-${node}`, "secret");

  /** Sets a node's key files (null: absent), like its kubelet updating the Secret. */
  function setKeys(node: string, keys: Record<"" | ".next" | ".previous", string | null>) {
    for (const [suffix, key] of Object.entries(keys)) {
      const f = keyFile(node) + suffix;
      if (key === null) rmSync(f, { force: true });
      else writeFileSync(f, key, { mode: 0o600 });
    }
  }

  const logs = (node: string) => lab.speaker(node)?.logs() ?? [];
  const changes = (node: string) => logs(node).filter((l) => l.msg === "heartbeat keys changed");
  /** Every "peer silent: dead" line so far, as "observer→peer". */
  const deaths = () =>
    lab.nodes.flatMap((n) =>
      logs(n.name)
        .filter((l) => l.msg === "peer silent: dead")
        .map((l) => `${n.name}→${String(l.peer)}`),
    );

  /** Tells a node's speaker to read its key files now; waits until it logged the change. */
  async function reload(node: string): Promise<void> {
    const before = changes(node).length;
    lab.speaker(node)!.proc.kill("SIGHUP");
    await waitFor(`${node} reading its new keys`, () => changes(node).length > before, 5000, 20);
  }

  beforeAll(async () => {
    await destroyStale("ilbkey");
    workDir = mkdtempSync(join(tmpdir(), "ironlb-e2e-keys-"));
    lab = await Lab.create({
      prefix,
      subnet: E2E_SUBNET,
      poolCIDR: POOL_CIDR,
      nodes: 3,
      kubeconfig: inject("kubeconfig"),
      binDir: inject("binDir"),
      workDir,
    });
    lab.startController();
    for (const n of lab.nodes) {
      mkdirSync(join(workDir, `keys-${n.name}`));
      setKeys(n.name, { "": OLD, ".next": null, ".previous": null });
      lab.startSpeaker(n.name, ["--heartbeat-secret-file", keyFile(n.name)]);
    }
    await lab.waitSpeakersReady(60_000);
    await lab.createPool("keys", ["198.51.100.74-198.51.100.80"]);
    await lab.createL2Advertisement("keys", { ipAddressPools: ["keys"] });
  });

  afterAll(async () => {
    try {
      await lab?.destroy();
    } finally {
      if (workDir && !process.env.IRONLB_KEEP_LOGS)
        rmSync(workDir, { recursive: true, force: true });
    }
    expect((await listNetns()).filter((n) => n.startsWith(prefix))).toEqual([]);
  });

  it("three steps, one node at a time: no speaker is declared dead, the Service stays put", async () => {
    const svc = await lab.createService("rot", { port: 8100 });
    const ip = await lab.waitForIP(svc);
    const owner = await waitFor("a node answering", () => lab.tryEntryNode(ip, 8100, 500));
    const deathsBefore = deaths();
    const steps: Array<Record<"" | ".next" | ".previous", string | null>> = [
      { "": OLD, ".next": NEW, ".previous": null },
      { "": NEW, ".next": null, ".previous": OLD },
      { "": NEW, ".next": null, ".previous": null },
    ];
    for (const step of steps) {
      for (const n of lab.nodes) {
        setKeys(n.name, step);
        await reload(n.name);
        // Nodes disagree about the keys now: several dead times of beats between them.
        await sleep(1000);
        expect(deaths(), `after ${n.name} took a step`).toEqual(deathsBefore);
      }
    }
    expect(await lab.tryEntryNode(ip, 8100, 1000)).toBe(owner);
    for (const n of lab.nodes) {
      expect(changes(n.name).at(-1), n.name).toMatchObject({ acceptedKeys: [expect.any(String)] });
    }
  });

  it("a key one node alone has makes its peers declare it dead (the check above can fail)", async () => {
    const [odd, ...others] = lab.nodes.map((n) => n.name) as [string, ...string[]];
    setKeys(odd, { "": ROGUE, ".next": null, ".previous": null });
    await reload(odd);
    await waitFor(
      "the others declaring it dead",
      () => others.every((o) => deaths().includes(`${o}→${odd}`)),
      5000,
    );
    // Back to the shared key: it is heard again.
    const lines = logs(others[0]!).length;
    setKeys(odd, { "": NEW, ".next": null, ".previous": null });
    await reload(odd);
    await waitFor("heard again", () =>
      logs(others[0]!)
        .slice(lines)
        .some((l) => l.msg === "live speakers changed" && (l.live as string[]).includes(odd)),
    );
  });
});
