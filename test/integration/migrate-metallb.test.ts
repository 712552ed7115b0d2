// Moving from MetalLB keeps every Service's IP (issue 21: "nothing shows that the IPs
// survive the switch"). On the real apiserver: MetalLB's objects are stored under
// metallb.io (stand-in CRDs of the same group, kinds and versions: MetalLB's own schemas are
// not needed to store them), next to a leftover legacy ConfigMap with a pool of its own;
// Services hold the IPs MetalLB gave them (status and MetalLB's
// annotations, as MetalLB leaves them), the real `ironlb migrate-from-metallb` converts the
// objects read from the cluster, the apiserver accepts its output under ironlb's CRDs, and
// ironlb's controller, started afterwards, keeps every IP.
import { execFile } from "node:child_process";
import { join } from "node:path";
import type { V1Service } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseDocuments } from "../../src/cli/migrate-metallb.ts";
import { KubeClient } from "../../src/k8s/client.ts";
import {
  applyCRDs,
  type Component,
  createNamespace,
  deletePool,
  getPool,
  getService,
  ingressIPs,
  runIronlb,
  startController,
  waitFor,
  waitForCondition,
} from "../support/cluster.ts";

const api = () => KubeClient.load(inject("kubeconfig"));
const tag = `mlb-${process.pid}`;
const POOL = tag;
const LEGACY = `${tag}-legacy`;
const CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const METALLB_KINDS = [
  { kind: "IPAddressPool", plural: "ipaddresspools", version: "v1beta1" },
  { kind: "L2Advertisement", plural: "l2advertisements", version: "v1beta1" },
  { kind: "BGPPeer", plural: "bgppeers", version: "v1beta2" },
];

/** Runs the real command (with `input` on stdin, if given). */
function ironlb(...args: Array<string | { input: string }>) {
  const input = args.find((a) => typeof a !== "string")?.input ?? "";
  return runIronlb(
    args.filter((a): a is string => typeof a === "string"),
    input,
  );
}

/** Runs the test control plane's kubectl with `input` on stdin. */
function kubectl(
  args: string[],
  input: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      join(inject("binDir"), "kubectl"),
      ["--kubeconfig", inject("kubeconfig"), ...args],
      { maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

/** A CRD of MetalLB's group that stores whatever it is given. */
function standIn(k: (typeof METALLB_KINDS)[number]) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${k.plural}.metallb.io` },
    spec: {
      group: "metallb.io",
      scope: "Namespaced",
      names: {
        kind: k.kind,
        plural: k.plural,
        singular: k.kind.toLowerCase(),
        listKind: `${k.kind}List`,
      },
      versions: [
        {
          name: k.version,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
          },
        },
      ],
    },
  };
}

describe("moving from MetalLB", () => {
  let ctrl: Component | undefined;
  let mlbNs: string;
  let a: string;
  let b: string;
  /** Service key -> the IP MetalLB gave it, and its pool. */
  const before = new Map<string, { ip: string; pool: string }>();
  let converted: Array<{ apiVersion: string; kind: string; metadata: { name: string } }> = [];

  /** A Service as MetalLB leaves it: its annotations, its status IP. */
  async function metallbService(
    ns: string,
    name: string,
    ip: string,
    annotations: Record<string, string>,
    port = 80,
    pool = POOL,
  ) {
    await api().create(`/api/v1/namespaces/${ns}/services`, {
      metadata: {
        name,
        annotations: { ...annotations, "metallb.io/ip-allocated-from-pool": pool },
      },
      spec: { type: "LoadBalancer", ports: [{ port, protocol: "TCP" }], selector: { app: name } },
    });
    await api().mergePatch(`/api/v1/namespaces/${ns}/services/${name}/status`, {
      status: { loadBalancer: { ingress: [{ ip, ipMode: "VIP" }] } },
    });
    before.set(`${ns}/${name}`, { ip, pool });
  }

  beforeAll(async () => {
    await applyCRDs();
    const k = api();
    for (const kind of METALLB_KINDS) await k.create(CRDS, standIn(kind));
    await waitFor("MetalLB's stand-in CRDs established", async () => {
      for (const kind of METALLB_KINDS) {
        const crd = await k.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
          `${CRDS}/${kind.plural}.metallb.io`,
        );
        if (!crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True"))
          return false;
      }
      return true;
    });
    mlbNs = await createNamespace("metallb-system");
    a = await createNamespace("mlb-a");
    b = await createNamespace("mlb-b");
    const mlb = (plural: string, version = "v1beta1") =>
      `/apis/metallb.io/${version}/namespaces/${mlbNs}/${plural}`;
    await k.create(mlb("ipaddresspools"), {
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: POOL, labels: { site: "lab" } },
      spec: { addresses: ["203.0.113.240/29"], serviceAllocation: { namespaces: [a, b] } },
    });
    await k.create(mlb("l2advertisements"), {
      apiVersion: "metallb.io/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: tag },
      spec: { ipAddressPoolSelectors: [{ matchLabels: { site: "lab" } }], interfaces: ["eth0"] },
    });

    // A leftover of MetalLB before v0.13: its ConfigMap, with a layer2 pool of its own.
    await k.create(`/api/v1/namespaces/${mlbNs}/configmaps`, {
      metadata: { name: "config" },
      data: {
        config: `address-pools:\n- name: ${LEGACY}\n  protocol: layer2\n  addresses: [203.0.113.248/30]\n`,
      },
    });
    await metallbService(a, "legacy", "203.0.113.249", {}, 80, LEGACY);

    // What MetalLB gave: a requested IP (either annotation spelling), IPs it chose, and
    // one IP shared by Services of two namespaces.
    await metallbService(a, "requested", "203.0.113.243", {
      "metallb.universe.tf/loadBalancerIPs": "203.0.113.243",
    });
    await metallbService(a, "requested-new", "203.0.113.245", {
      "metallb.io/loadBalancerIPs": "203.0.113.245",
    });
    await metallbService(a, "chosen", "203.0.113.241", {});
    await metallbService(b, "chosen", "203.0.113.242", {
      "metallb.universe.tf/address-pool": POOL,
    });
    const share = { "metallb.universe.tf/allow-shared-ip": "web" };
    await metallbService(a, "shared", "203.0.113.246", share, 80);
    await metallbService(b, "shared", "203.0.113.246", share, 443);
  });

  afterAll(async () => {
    await ctrl?.stop();
    const k = api();
    const gone = (p: string) => k.delete(p).catch(() => undefined);
    for (const key of before.keys()) {
      const [ns, name] = key.split("/");
      await gone(`/api/v1/namespaces/${ns}/services/${name}`);
    }
    for (const o of converted)
      if (o.kind !== "IPAddressPool")
        await gone(`/apis/ironlb.dev/v1beta1/${o.kind.toLowerCase()}s/${o.metadata.name}`);
    for (const p of [POOL, LEGACY]) await deletePool(p).catch(() => undefined);
    for (const kind of METALLB_KINDS) await gone(`${CRDS}/${kind.plural}.metallb.io`);
  });

  it("converts MetalLB's objects read from the cluster, and the apiserver accepts them under ironlb's CRDs", async () => {
    const r = await ironlb(
      "migrate-from-metallb",
      "--kubeconfig",
      inject("kubeconfig"),
      "--namespace",
      mlbNs,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`the namespace of MetalLB's (${mlbNs}) is dropped`);
    converted = parseDocuments(r.stdout) as typeof converted;
    expect(converted).toEqual([
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: POOL, labels: { site: "lab" } },
        spec: {
          addresses: ["203.0.113.240/29"],
          // Services of a and b share 203.0.113.246: MetalLB allowed it, ironlb must be told.
          serviceAllocation: { namespaces: [a, b], allowSharingAcrossNamespaces: true },
        },
      },
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "L2Advertisement",
        metadata: { name: tag },
        spec: { ipAddressPoolSelectors: [{ matchLabels: { site: "lab" } }], interfaces: ["eth0"] },
      },
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: LEGACY },
        spec: { addresses: ["203.0.113.248/30"] },
      },
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "L2Advertisement",
        metadata: { name: LEGACY },
        spec: { ipAddressPools: [LEGACY] },
      },
    ]);
    // The same from what `kubectl get -o yaml` prints (Lists), through stdin.
    const exported = await kubectl(
      ["get", "ipaddresspools.metallb.io,l2advertisements.metallb.io", "-n", mlbNs, "-o", "yaml"],
      "",
    );
    const cm = await kubectl(["get", "configmap", "config", "-n", mlbNs, "-o", "yaml"], "");
    const svcs = await kubectl(["get", "services", "-A", "-o", "yaml"], "");
    const fromFile = await ironlb("migrate-from-metallb", "-f", "-", {
      input: `${exported.stdout}---\n${cm.stdout}---\n${svcs.stdout}`,
    });
    expect(fromFile.stderr).toBe("");
    expect(fromFile.stdout).toBe(r.stdout);
    // The printed YAML, comments and all, through the real kubectl.
    const applied = await kubectl(["apply", "-f", "-"], r.stdout);
    expect(applied.stderr).toBe("");
    expect(applied.code).toBe(0);
    expect(applied.stdout).toBe(
      [
        `ipaddresspool.ironlb.dev/${POOL} created`,
        `l2advertisement.ironlb.dev/${tag} created`,
        `ipaddresspool.ironlb.dev/${LEGACY} created`,
        `l2advertisement.ironlb.dev/${LEGACY} created\n`,
      ].join("\n"),
    );
  });

  it("turns a BGPPeer's plain password into a Secret in ironlb's namespace that the apiserver accepts with the peer", async () => {
    const lbNs = await createNamespace("mlb-ironlb");
    const peer = `${tag}-router`;
    const input = `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: ${peer}, namespace: metallb-system }
spec: { myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.1, password: "md5 s3cret" }
`;
    const r = await ironlb("migrate-from-metallb", "-f", "-", "--ironlb-namespace", lbNs, {
      input,
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `warning: BGPPeer metallb-system/${peer}: spec.password becomes Secret ${lbNs}/${peer}-bgp-password`,
    );
    const applied = await kubectl(["apply", "-f", "-"], r.stdout);
    try {
      expect(applied.stderr).toBe("");
      expect(applied.stdout).toBe(
        `secret/${peer}-bgp-password created\nbgppeer.ironlb.dev/${peer} created\n`,
      );
      const secret = await api().get<{ type: string; data: Record<string, string> }>(
        `/api/v1/namespaces/${lbNs}/secrets/${peer}-bgp-password`,
      );
      expect(secret.type).toBe("kubernetes.io/basic-auth");
      expect(Buffer.from(secret.data.password!, "base64").toString()).toBe("md5 s3cret");
      const stored = await api().get<{ spec: Record<string, unknown> }>(
        `/apis/ironlb.dev/v1beta1/bgppeers/${peer}`,
      );
      expect(stored.spec.passwordSecret).toEqual({ name: `${peer}-bgp-password` });
      expect(stored.spec.password).toBeUndefined();
    } finally {
      await api()
        .delete(`/apis/ironlb.dev/v1beta1/bgppeers/${peer}`)
        .catch(() => undefined);
    }
  });

  it("--apply writes the converted objects with server-side apply, says what it did, and changes nothing the second time", async () => {
    const pool = `${tag}-apply`;
    const lbNs = await createNamespace("mlb-apply");
    const input = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: ${pool}, namespace: metallb-system }
spec: { addresses: [192.0.2.208/30], autoAssign: false }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: ${pool}, namespace: metallb-system }
spec: { ipAddressPools: [${pool}] }
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: ${pool}, namespace: metallb-system }
spec: { myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.1, password: "md5 s3cret" }
`;
    const run = () =>
      ironlb(
        "migrate-from-metallb",
        "-f",
        "-",
        "--apply",
        "--ironlb-namespace",
        lbNs,
        "--kubeconfig",
        inject("kubeconfig"),
        { input },
      );
    const ironlbPath = (plural: string) => `/apis/ironlb.dev/v1beta1/${plural}/${pool}`;
    try {
      const first = await run();
      expect(first.stderr).toContain("warning: BGPPeer metallb-system/");
      expect(first.stderr).not.toMatch(/^error:/m);
      expect(first.code).toBe(0);
      expect(first.stdout).toBe(
        [
          `ipaddresspool.ironlb.dev/${pool} created`,
          `l2advertisement.ironlb.dev/${pool} created`,
          `secret/${pool}-bgp-password created`,
          `bgppeer.ironlb.dev/${pool} created\n`,
        ].join("\n"),
      );
      const stored = await api().get<{
        metadata: { managedFields: { manager: string; operation: string }[] };
        spec: Record<string, unknown>;
      }>(ironlbPath("ipaddresspools"));
      expect(stored.spec.addresses).toEqual(["192.0.2.208/30"]);
      expect(stored.metadata.managedFields).toContainEqual(
        expect.objectContaining({ manager: "ironlb-migrate-from-metallb", operation: "Apply" }),
      );
      const peer = await api().get<{ spec: Record<string, unknown> }>(ironlbPath("bgppeers"));
      expect(peer.spec.passwordSecret).toEqual({ name: `${pool}-bgp-password` });

      // Again: nothing changes.
      const again = await run();
      expect(again.code).toBe(0);
      expect(again.stdout).toBe(
        [
          `ipaddresspool.ironlb.dev/${pool} unchanged`,
          `l2advertisement.ironlb.dev/${pool} unchanged`,
          `secret/${pool}-bgp-password unchanged`,
          `bgppeer.ironlb.dev/${pool} unchanged\n`,
        ].join("\n"),
      );

      // Someone changed a field it applies: a conflict, said, and not overwritten.
      await api().mergePatch(ironlbPath("ipaddresspools"), { spec: { autoAssign: true } });
      const conflict = await run();
      expect(conflict.code).toBe(1);
      expect(conflict.stderr).toContain(
        `error: ipaddresspool.ironlb.dev/${pool} not applied: it has fields someone else set to other values`,
      );
      expect(conflict.stdout).toContain(`l2advertisement.ironlb.dev/${pool} unchanged`);
      const kept = await api().get<{ spec: Record<string, unknown> }>(ironlbPath("ipaddresspools"));
      expect(kept.spec.autoAssign).toBe(true);
    } finally {
      for (const plural of ["bgppeers", "l2advertisements"])
        await api()
          .delete(ironlbPath(plural))
          .catch(() => undefined);
      await deletePool(pool).catch(() => undefined);
    }
  });

  it("keeps every Service's IP when ironlb's controller starts", async () => {
    expect(converted.length).toBe(4);
    ctrl = startController(["--no-leader-elect"]);
    for (const [key, { ip, pool }] of before) {
      const [ns, name] = key.split("/") as [string, string];
      const cond = await waitForCondition(ns, name, "True");
      expect(cond.reason, key).toBe("Allocated");
      const svc: V1Service = await getService(ns, name);
      expect(ingressIPs(svc), key).toEqual([ip]);
      expect(svc.metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"], key).toBe(pool);
    }
    // Only this file's Services: in a full run other files leave Services whose pools are gone.
    expect(
      ctrl
        .logs()
        .filter((l) => l.msg === "existing IP cannot be kept" && before.has(String(l.service))),
    ).toEqual([]);
    const restored = ctrl
      .logs()
      .find((l) => l.msg === "restored assignments from service statuses");
    expect(restored?.restored).toBeGreaterThanOrEqual(before.size);
    await waitFor(
      "the pool to count the kept IPs",
      async () => (await getPool(POOL)).status?.assignedIPv4 === 5,
    );
  });
});
