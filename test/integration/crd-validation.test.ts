// The CRDs in config/crd against a real kube-apiserver: every example of the shared table is
// accepted or rejected with the expected message, defaults are applied, status goes only
// through the status subresource, and the printer columns resolve.
import { readdirSync, readFileSync } from "node:fs";
import { type RequestOptions, request } from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  KubeConfig,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { addressMessages } from "../../src/api/addresses.ts";
import { bgpAdvertisementMessages } from "../../src/api/bgpadvertisement.ts";
import { bgpPeerMessages } from "../../src/api/bgppeer.ts";
import { bgpSessionStateMessages } from "../../src/api/bgpsessionstate.ts";
import { messages } from "../../src/api/common.ts";
import { parseIPAddressPoolStatus } from "../../src/api/ipaddresspool.ts";
import { ipAnnouncementMessages } from "../../src/api/ipannouncement.ts";
import { interfaceMessages } from "../../src/api/l2advertisement.ts";
import { crdExamples } from "../fixtures/crd-examples.ts";
import { sleep } from "../support/wait.ts";

const group = "ironlb.dev";
const version = "v1beta1";
const crdDir = fileURLToPath(new URL("../../config/crd", import.meta.url));
const plurals = {
  IPAddressPool: "ipaddresspools",
  L2Advertisement: "l2advertisements",
  IPAnnouncement: "ipannouncements",
  BGPPeer: "bgppeers",
  BGPAdvertisement: "bgpadvertisements",
  BGPSessionState: "bgpsessionstates",
  BFDProfile: "bfdprofiles",
} as const;

const kc = new KubeConfig();
let crdApi: ApiextensionsV1Api;
let objects: CustomObjectsApi;

/** What a failed call of client-node 2.x carries. */
interface ApiError {
  code: number;
  body: string;
}

function isApiError(e: unknown): e is ApiError {
  return typeof e === "object" && e !== null && "code" in e && "body" in e;
}

/** Runs `fn` and returns the HTTP status and message of its failure (or of nothing: 0). */
async function failure(fn: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await fn();
    return { code: 0, message: "" };
  } catch (e) {
    if (!isApiError(e)) throw e;
    let message = e.body;
    try {
      message = (JSON.parse(e.body) as { message?: string }).message ?? e.body;
    } catch {
      // not JSON: keep the raw body
    }
    return { code: e.code, message };
  }
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function poolBody(
  name: string,
  spec: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return {
    apiVersion: `${group}/${version}`,
    kind: "IPAddressPool",
    metadata: { name },
    spec,
    ...extra,
  };
}

beforeAll(async () => {
  kc.loadFromFile(inject("kubeconfig"));
  crdApi = kc.makeApiClient(ApiextensionsV1Api);
  objects = kc.makeApiClient(CustomObjectsApi);
  const crds = readdirSync(crdDir)
    .filter((f) => f.endsWith(".yaml"))
    .flatMap(
      (f) => loadAllYaml(readFileSync(join(crdDir, f), "utf8")) as V1CustomResourceDefinition[],
    );
  expect(crds.map((c) => c.metadata?.name).sort()).toEqual([
    "bfdprofiles.ironlb.dev",
    "bgpadvertisements.ironlb.dev",
    "bgppeers.ironlb.dev",
    "bgpsessionstates.ironlb.dev",
    "ipaddresspools.ironlb.dev",
    "ipannouncements.ironlb.dev",
    "l2advertisements.ironlb.dev",
  ]);
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    const created = await failure(() => crdApi.createCustomResourceDefinition({ body: crd }));
    if (created.code === 409) {
      const old = await crdApi.readCustomResourceDefinition({ name });
      crd.metadata!.resourceVersion = old.metadata?.resourceVersion;
      await crdApi.replaceCustomResourceDefinition({ name, body: crd });
    } else if (created.code !== 0) {
      throw new Error(`creating CRD ${name}: ${created.code} ${created.message}`);
    }
    await until(`${name} Established`, async () => {
      const c = await crdApi.readCustomResourceDefinition({ name });
      return c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")
        ? true
        : undefined;
    });
  }
  // Established comes a moment before the new resources are served everywhere.
  for (const plural of Object.values(plurals)) {
    await until(`${plural} served`, () =>
      objects.listClusterCustomObject({ group, version, plural }),
    );
  }
});

afterAll(async () => {
  // The control plane is thrown away after the run; delete only what a failed test may have left.
  for (const plural of Object.values(plurals)) {
    const list = (await objects
      .listClusterCustomObject({ group, version, plural })
      .catch(() => ({ items: [] }))) as {
      items: { metadata: { name: string } }[];
    };
    for (const o of list.items) {
      await objects
        .deleteClusterCustomObject({ group, version, plural, name: o.metadata.name })
        .catch(() => {});
    }
  }
});

describe("CRD manifests and src/api", () => {
  it("use the same messages", () => {
    const manifests = JSON.stringify(
      readdirSync(crdDir).flatMap((f) => loadAllYaml(readFileSync(join(crdDir, f), "utf8"))),
    );
    const texts = [
      ...Object.values(messages),
      ...Object.values(interfaceMessages),
      ...Object.values(ipAnnouncementMessages),
      ...Object.values(bgpPeerMessages),
      ...Object.values(bgpAdvertisementMessages),
      ...Object.values(bgpSessionStateMessages),
      ...Object.values(addressMessages).filter((m) => typeof m === "string"),
      // The host-bits message is built by a messageExpression around the entry.
      addressMessages.hostBits("ENTRY").split("ENTRY")[1]!,
    ];
    for (const t of texts) expect(manifests, t).toContain(t);
  });
});

describe("CRD validation of the shared example table", () => {
  it("has enough examples", () => {
    expect(crdExamples.filter((e) => e.valid).length).toBeGreaterThanOrEqual(8);
    expect(crdExamples.filter((e) => !e.valid).length).toBeGreaterThanOrEqual(20);
    expect(new Set(crdExamples.map((e) => e.name)).size).toBe(crdExamples.length);
  });

  for (const ex of crdExamples) {
    it(`${ex.valid ? "accepts" : "rejects"} ${ex.kind} ${ex.name}`, async () => {
      const plural = plurals[ex.kind];
      const name = (ex.object.metadata as { name: string }).name;
      // kubectl sends Strict field validation: unknown fields are errors, not warnings.
      const res = await failure(() =>
        objects.createClusterCustomObject({
          group,
          version,
          plural,
          body: ex.object,
          fieldValidation: "Strict",
        }),
      );
      if (ex.valid) {
        expect(res).toEqual({ code: 0, message: "" });
        await objects.deleteClusterCustomObject({ group, version, plural, name });
        return;
      }
      // Schema and CEL failures are 422 Invalid; strict decoding failures are 400 BadRequest.
      const unknownField = ex.message?.startsWith("unknown field") ?? false;
      expect(res.code).toBe(unknownField ? 400 : 422);
      expect(res.message).toContain(ex.message);
    });
  }
});

describe("IPAddressPool behaviour", () => {
  const plural = plurals.IPAddressPool;

  it("applies the defaults", async () => {
    const created = (await objects.createClusterCustomObject({
      group,
      version,
      plural,
      body: poolBody("defaults", { addresses: ["198.51.100.0/28"] }),
    })) as { spec: Record<string, unknown> };
    expect(created.spec).toEqual({
      addresses: ["198.51.100.0/28"],
      autoAssign: true,
      avoidBuggyIPs: false,
      excludeNetworkAndBroadcast: false,
    });
    await objects.deleteClusterCustomObject({ group, version, plural, name: "defaults" });
  });

  it("drops unknown fields with a warning when validation is not Strict", async () => {
    const created = (await objects.createClusterCustomObject({
      group,
      version,
      plural,
      body: poolBody("pruned", { addresses: ["198.51.100.16/28"], bogus: 1 }),
      fieldValidation: "Ignore",
    })) as { spec: Record<string, unknown> };
    expect(created.spec).not.toHaveProperty("bogus");
    await objects.deleteClusterCustomObject({ group, version, plural, name: "pruned" });
  });

  it("takes status only through the status subresource", async () => {
    const name = "status";
    const status = {
      assignedIPv4: 3,
      assignedIPv6: 1,
      availableIPv4: 13,
      availableIPv6: 9007199254740991,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "PoolReady",
          message: "16 addresses",
          lastTransitionTime: "2026-01-02T03:04:05Z",
          observedGeneration: 1,
        },
        {
          type: "Conflict",
          status: "True",
          reason: "OverlapsPool",
          message: "198.51.100.32/28 overlaps the older pool lan",
          lastTransitionTime: "2026-01-02T03:04:05Z",
        },
      ],
    };
    // Written with the object at creation: ignored.
    const created = (await objects.createClusterCustomObject({
      group,
      version,
      plural,
      body: poolBody(name, { addresses: ["198.51.100.32/28", "2001:db8::/64"] }, { status }),
    })) as Record<string, unknown> & { metadata: { resourceVersion: string } };
    expect(created.status).toBeUndefined();

    // Written with a normal update: ignored as well.
    const updated = (await objects.replaceClusterCustomObject({
      group,
      version,
      plural,
      name,
      body: { ...created, status },
    })) as Record<string, unknown> & { metadata: { resourceVersion: string } };
    expect(updated.status).toBeUndefined();

    // Through the status subresource: kept, and ironlb's status checker agrees with it.
    const withStatus = (await objects.replaceClusterCustomObjectStatus({
      group,
      version,
      plural,
      name,
      body: { ...updated, status },
    })) as { status: unknown; spec: unknown };
    expect(withStatus.status).toEqual(status);
    expect(parseIPAddressPoolStatus(withStatus.status)).toMatchObject({ ok: true });

    // The status subresource validates too.
    const bad = await failure(() =>
      objects.replaceClusterCustomObjectStatus({
        group,
        version,
        plural,
        name,
        body: {
          ...withStatus,
          status: {
            ...status,
            assignedIPv4: -1,
            conditions: [{ ...status.conditions[0], status: "Maybe" }],
          },
        },
      }),
    );
    expect(bad.code).toBe(422);
    expect(bad.message).toContain("should be greater than or equal to 0");
    expect(bad.message).toContain('Unsupported value: "Maybe"');

    // And the status subresource does not change the spec.
    const sneaky = (await objects.replaceClusterCustomObjectStatus({
      group,
      version,
      plural,
      name,
      body: { ...withStatus, spec: { addresses: ["203.0.113.0/24"] } },
    })) as { spec: { addresses: string[] } };
    expect(sneaky.spec.addresses).toEqual(["198.51.100.32/28", "2001:db8::/64"]);

    // The printer columns resolve against the stored object.
    const table = await getTable(`/apis/${group}/${version}/${plural}/${name}`);
    const columns = table.columnDefinitions.map((c) => c.name);
    expect(columns).toEqual([
      "Name",
      "Addresses",
      "Assigned",
      "Available",
      "Assigned-v6",
      "Available-v6",
      "Ready",
      "Conflict",
      "Age",
    ]);
    const cells = table.rows[0]!.cells;
    expect(cells.slice(0, 8)).toEqual([
      name,
      '["198.51.100.32/28","2001:db8::/64"]',
      3,
      13,
      1,
      9007199254740991,
      "True",
      "True",
    ]);
    expect(table.columnDefinitions.filter((c) => c.priority === 1).map((c) => c.name)).toEqual([
      "Assigned-v6",
      "Available-v6",
    ]);

    await objects.deleteClusterCustomObject({ group, version, plural, name });
  });
});

describe("BGP kinds", () => {
  it("apply the defaults (peerPort 179, aggregation 32 and 128)", async () => {
    const peer = (await objects.createClusterCustomObject({
      group,
      version,
      plural: plurals.BGPPeer,
      body: {
        apiVersion: `${group}/${version}`,
        kind: "BGPPeer",
        metadata: { name: "defaults" },
        spec: { myASN: 64512, peerASN: 64500, peerAddress: "192.0.2.1" },
      },
    })) as { spec: Record<string, unknown> };
    expect(peer.spec).toEqual({
      myASN: 64512,
      peerASN: 64500,
      peerAddress: "192.0.2.1",
      peerPort: 179,
    });
    const adv = (await objects.createClusterCustomObject({
      group,
      version,
      plural: plurals.BGPAdvertisement,
      body: {
        apiVersion: `${group}/${version}`,
        kind: "BGPAdvertisement",
        metadata: { name: "defaults" },
        spec: { communities: ["no-export"] },
      },
    })) as { spec: Record<string, unknown> };
    expect(adv.spec).toEqual({
      communities: ["no-export"],
      aggregationLength: 32,
      aggregationLengthV6: 128,
    });
    await objects.deleteClusterCustomObject({
      group,
      version,
      plural: plurals.BGPPeer,
      name: "defaults",
    });
    await objects.deleteClusterCustomObject({
      group,
      version,
      plural: plurals.BGPAdvertisement,
      name: "defaults",
    });
  });

  it("shows a BGPSessionState's node, peer, state, prefixes and flaps as kubectl get does", async () => {
    const plural = plurals.BGPSessionState;
    const name = "node-1-tor-a-12345678";
    await objects.createClusterCustomObject({
      group,
      version,
      plural,
      body: {
        apiVersion: `${group}/${version}`,
        kind: "BGPSessionState",
        metadata: { name },
        status: {
          node: "node-1",
          peer: "tor-a",
          state: "Connect",
          lastError: "connect ECONNREFUSED 192.0.2.1:179",
          prefixesSent: 0,
          flaps: 2,
        },
      },
    });
    const table = await getTable(`/apis/${group}/${version}/${plural}/${name}`);
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      "Name",
      "Node",
      "Peer",
      "State",
      "Prefixes",
      "Flaps",
      "Established",
      "Last-Error",
      "GR",
    ]);
    expect(table.rows[0]!.cells).toEqual([
      name,
      "node-1",
      "tor-a",
      "Connect",
      0,
      2,
      null,
      "connect ECONNREFUSED 192.0.2.1:179",
      null,
    ]);
    await objects.deleteClusterCustomObject({ group, version, plural, name });
  });
});

interface Table {
  columnDefinitions: { name: string; priority: number }[];
  rows: { cells: unknown[] }[];
}

/** GETs a path as a server-side Table, the way kubectl get asks for it. */
async function getTable(path: string): Promise<Table> {
  const server = new URL(kc.getCurrentCluster()!.server);
  const opts: RequestOptions = {
    hostname: server.hostname,
    port: server.port,
    path,
    method: "GET",
    headers: { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io" },
  };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: ${res.statusCode} ${body}`));
        else resolve(JSON.parse(body) as Table);
      });
    });
    req.on("error", reject);
    req.end();
  });
}
