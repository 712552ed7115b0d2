// The Service condition ironlb.dev/Announceable against the real apiserver and the real
// controller: Services whose IP no node may announce (no speaker on the only node the
// L2Advertisement selects, no advertisement for the pool, `Local` without a ready endpoint,
// every node drained with force) get the condition False with the reason, a Warning Event,
// and `ironlb status` says why; each goes back to True (with a Normal Event) once a node
// may announce. The speaker's side (its Lease) is written here as a speaker would: speakers
// need network namespaces. Only this file's node is selected by its advertisements, so
// other files' nodes and speakers change nothing here.
import type { V1Service } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient } from "../../src/k8s/client.ts";
import {
  applyCRDs,
  type Component,
  createNamespace,
  createPool,
  createService,
  deletePool,
  getService,
  runIronlb,
  startController,
  waitFor,
  waitForEvent,
  waitForIPs,
} from "../support/cluster.ts";

const CONDITION = "ironlb.dev/Announceable";
const api = () => KubeClient.load(inject("kubeconfig"));
const tag = `announce-${process.pid}`;
const NODE = `${tag}-a`;
const POOL = `${tag}-p`;
const POOL_NOAD = `${tag}-noad`;
const AD = tag;
const AD_LATE = `${tag}-late`;
const ADS = "/apis/ironlb.dev/v1beta1/l2advertisements";
/** The controller's --namespace (startController): where it reads speaker Leases. */
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
const LEASE = `ironlb-speaker-${NODE}`;

const ironlb = (...args: string[]) => runIronlb(args);

function announceable(svc: V1Service) {
  return svc.status?.conditions?.find((c) => c.type === CONDITION);
}

async function waitForAnnounceable(ns: string, name: string, status: "True" | "False") {
  return waitFor(
    `${CONDITION}=${status} on ${ns}/${name}`,
    async () => {
      const c = announceable(await getService(ns, name));
      return c?.status === status ? c : undefined;
    },
    30_000,
  );
}

/** The `ironlb status` line of a Service. */
async function statusLine(ns: string, name: string): Promise<string> {
  const r = await ironlb("status", "--kubeconfig", inject("kubeconfig"), "--namespace", ns);
  expect(r.stderr).toBe("");
  return r.stdout.split("\n").find((l) => l.startsWith(`${ns}/${name} `)) ?? "";
}

describe("Service condition ironlb.dev/Announceable", () => {
  let ctrl: Component;
  let ns: string;

  async function endpoints(service: string, ready: boolean) {
    const body = {
      metadata: { name: `${service}-1`, labels: { "kubernetes.io/service-name": service } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready }, nodeName: NODE }],
      ports: [{ port: 8080, protocol: "TCP" }],
    };
    const path = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`;
    await api()
      .create(path, body)
      .catch(() => api().mergePatch(`${path}/${service}-1`, body));
  }

  async function speakerRuns() {
    await api()
      .create(LEASES, {
        metadata: { name: LEASE, labels: { "ironlb.dev/speaker": "true" } },
        spec: {
          holderIdentity: NODE,
          leaseDurationSeconds: 3600,
          renewTime: new Date().toISOString().replace("Z", "000Z"),
        },
      })
      .catch(() => undefined);
  }

  const inPool = (pool: string) => ({ annotations: { "ironlb.dev/address-pool": pool } });

  beforeAll(async () => {
    await applyCRDs();
    ns = await createNamespace("announce");
    const a = api();
    await a.create("/api/v1/nodes", { metadata: { name: NODE, labels: { "announce-test": tag } } });
    await a.mergePatch(`/api/v1/nodes/${NODE}/status`, {
      status: { conditions: [{ type: "Ready", status: "True", reason: "Test", message: "" }] },
    });
    await createPool(POOL, {
      addresses: ["192.0.2.196/30"],
      autoAssign: false,
      serviceAllocation: { namespaces: [ns] },
    });
    await createPool(POOL_NOAD, {
      addresses: ["192.0.2.200/30"],
      autoAssign: false,
      serviceAllocation: { namespaces: [ns] },
    });
    // Only this file's node: nodes and speakers of other files never count here.
    await a.create(ADS, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: AD },
      spec: { ipAddressPools: [POOL], nodeSelectors: [{ matchLabels: { "announce-test": tag } }] },
    });
    ctrl = startController(["--no-leader-elect"]);
  });

  afterAll(async () => {
    await ctrl?.stop();
    const a = api();
    const gone = (path: string) => a.delete(path).catch(() => undefined);
    await gone(`${ADS}/${AD}`);
    await gone(`${ADS}/${AD_LATE}`);
    await gone(`${LEASES}/${LEASE}`);
    await gone(`/api/v1/nodes/${NODE}`);
    await deletePool(POOL).catch(() => undefined);
    await deletePool(POOL_NOAD).catch(() => undefined);
  });

  it("no speaker on the only selected node: False with the reason, Event, status; True once one runs", async () => {
    await createService(ns, "nospeaker", inPool(POOL));
    // Its endpoint at once: the only thing wrong is the speaker.
    await endpoints("nospeaker", true);
    const [ip] = await waitForIPs(ns, "nospeaker");

    const c = await waitForAnnounceable(ns, "nospeaker", "False");
    expect(c.reason).toBe("NoEligibleNode");
    expect(c.message).toContain(`no node may announce ${ip}`);
    expect(c.message).toContain("1 without a live speaker");
    const ev = await waitForEvent(ns, "nospeaker", "NotAnnounceable", ip);
    expect(ev.type).toBe("Warning");
    expect(await statusLine(ns, "nospeaker")).toMatch(/not announced: .*1 without a live speaker/);

    await speakerRuns();
    const back = await waitForAnnounceable(ns, "nospeaker", "True");
    expect(back.reason).toBe("Announceable");
    const ok = await waitForEvent(ns, "nospeaker", "Announceable", "NoEligibleNode");
    expect(ok.type).toBe("Normal");
    expect(await statusLine(ns, "nospeaker")).not.toContain("not announced");
  });

  it("no advertisement selects the pool: False, then True when one does", async () => {
    await speakerRuns();
    await createService(ns, "noad", inPool(POOL_NOAD));
    await endpoints("noad", true);
    await waitForIPs(ns, "noad");

    const c = await waitForAnnounceable(ns, "noad", "False");
    expect(c.reason).toBe("NoAdvertisement");
    expect(c.message).toMatch(
      new RegExp(`no L2Advertisement (or BGPAdvertisement )?selects pool "${POOL_NOAD}"`),
    );
    expect(await statusLine(ns, "noad")).toContain("not announced");

    await api().create(ADS, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: AD_LATE },
      spec: {
        ipAddressPools: [POOL_NOAD],
        nodeSelectors: [{ matchLabels: { "announce-test": tag } }],
      },
    });
    await waitForAnnounceable(ns, "noad", "True");
  });

  it("Local without a ready endpoint: False; True when its endpoint becomes ready", async () => {
    await speakerRuns();
    await createService(ns, "local", { ...inPool(POOL), externalTrafficPolicy: "Local" });
    await waitForIPs(ns, "local");
    await endpoints("local", false);

    const c = await waitForAnnounceable(ns, "local", "False");
    expect(c.reason).toBe("NoReadyEndpoints");
    await endpoints("local", true);
    await waitForAnnounceable(ns, "local", "True");
  });

  it("every node drained with force: False; True after undrain", async () => {
    await speakerRuns();
    await createService(ns, "drained", inPool(POOL));
    await endpoints("drained", true);
    await waitForIPs(ns, "drained");
    // A healthy Service gets no condition at all (no write for it). The sync point: another
    // Service made unannounceable after this one got its IP is reported (5 s of judging).
    await endpoints("local", false);
    await waitForAnnounceable(ns, "local", "False");
    expect(announceable(await getService(ns, "drained"))).toBeUndefined();
    await endpoints("local", true);

    const node = `/api/v1/nodes/${NODE}`;
    await api().mergePatch(node, { metadata: { annotations: { "ironlb.dev/drain": "force" } } });
    try {
      const c = await waitForAnnounceable(ns, "drained", "False");
      expect(c.reason).toBe("NoEligibleNode");
      expect(c.message).toContain(`ironlb.dev/drain=force: ${NODE}`);
    } finally {
      await api().mergePatch(node, { metadata: { annotations: { "ironlb.dev/drain": null } } });
    }
    await waitForAnnounceable(ns, "drained", "True");
  });

  it("a speaker whose Lease stops being renewed counts as gone (no event says so): False, then True when it renews", async () => {
    await speakerRuns();
    const renew = (durationS: number) =>
      api().mergePatch(`${LEASES}/${LEASE}`, {
        spec: {
          leaseDurationSeconds: durationS,
          renewTime: new Date().toISOString().replace("Z", "000Z"),
        },
      });
    // Renewed once with a 1 s duration, then never again: gone 2 s later (twice its duration).
    await renew(1);
    const c = await waitForAnnounceable(ns, "drained", "False");
    expect(c.reason).toBe("NoEligibleNode");
    expect(c.message).toContain("1 without a live speaker");
    await renew(3600);
    await waitForAnnounceable(ns, "drained", "True");
  });
});
