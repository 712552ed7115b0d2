// What each module costs at load: RSS and V8 heap after a full GC, each case in a fresh
// `node --expose-gc` process, minus a bare Node process. "compiled" cases import the same
// sources compiled to JavaScript by tsc (no type stripping), as the image ships them.
// Then what one cached object costs on the V8 heap: 10,000 distinct objects parsed from
// JSON as the informers keep them (managedFields dropped), and slimmed to the fields the
// components read.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { compileToJs, imageRuntime } from "./compile.ts";

const root = join(import.meta.dirname, "..");
const out = compileToJs();
try {
  const cases: Array<[string, string, string[]?]> = [
    ["bare Node", ""],
    ["type stripping (one tiny .ts module)", `${root}/src/api/group.ts`],
    ["pino", "pino"],
    // An ES module import of node:http reads its lazy exports (WebSocket...) and so loads
    // undici; process.getBuiltinModule, as src/k8s and src/observability use it, does not.
    ["node:http, ES module import", "node:http"],
    ["node:http, process.getBuiltinModule", "builtin:node:http"],
    ["node:https, ES module import", "node:https"],
    ["prom-client (no longer loaded: a test reference only)", "prom-client"],
    ["ironlb's checkers of the CRDs (compiled, src/api)", `${out}/api/index.js`],
    ["ironlb's metrics (compiled, src/observability)", `${out}/observability/metrics.js`],
    ["controller, all its modules (.ts)", `${root}/src/controller/main.ts`],
    ["controller, all its modules (compiled .js)", `${out}/controller/main.js`],
    [
      "controller, compiled, with the image's node flags",
      `${out}/controller/main.js`,
      imageRuntime().nodeArgs,
    ],
    ["speaker, all its modules (.ts)", `${root}/src/speaker/main.ts`],
    ["speaker, all its modules (compiled .js)", `${out}/speaker/main.js`],
  ];
  const measure = (spec: string, flags: string[] = []) => {
    const imports = spec
      .split(",")
      .filter(Boolean)
      .map((m) =>
        m.startsWith("builtin:")
          ? `process.getBuiltinModule(${JSON.stringify(m.slice(8))});`
          : `await import(${JSON.stringify(m)});`,
      );
    const script = `${imports.join(" ")}
      for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
      const m = process.memoryUsage();
      console.log(JSON.stringify({ rss: m.rss, heap: m.heapUsed }));`;
    const runs = [0, 1, 2].map(() => {
      const r = spawnSync(
        process.execPath,
        ["--expose-gc", ...flags, "--input-type=module", "-e", script],
        { encoding: "utf8", cwd: root },
      );
      if (r.status !== 0) throw new Error(`loading ${spec} failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split("\n").pop()!) as { rss: number; heap: number };
    });
    // The median of three: the machine is shared.
    const med = (k: "rss" | "heap") => runs.map((x) => x[k]).sort((a, b) => a - b)[1]!;
    return { rss: med("rss") / 2 ** 20, heap: med("heap") / 2 ** 20 };
  };
  const base = measure("");
  console.log("| module(s) loaded | RSS MiB | + over bare Node | V8 heap MiB | + over bare Node |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const [label, spec, flags] of cases) {
    const m = spec === "" ? base : measure(spec, flags);
    console.log(
      `| ${label} | ${m.rss.toFixed(1)} | ${(m.rss - base.rss).toFixed(1)} | ${m.heap.toFixed(1)} | ${(m.heap - base.heap).toFixed(1)} |`,
    );
  }
  console.log(`\n${cacheCost()}`);
} finally {
  rmSync(out, { recursive: true, force: true });
}

/** Heap bytes per cached object, full and slim, in a fresh process each. */
function cacheCost(): string {
  const service = (i: number) => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      annotations: { "ironlb.dev/ip-allocated-from-pool": "bench" },
      creationTimestamp: "2026-12-01T15:05:17Z",
      name: `cold-${i}`,
      namespace: "default",
      resourceVersion: String(3000 + i),
      uid: `b1c22052-f6df-4ff8-9c4b-${String(i).padStart(12, "0")}`,
    },
    spec: {
      allocateLoadBalancerNodePorts: false,
      clusterIP: `2001:db8:96::${i.toString(16)}`,
      clusterIPs: [`2001:db8:96::${i.toString(16)}`],
      externalTrafficPolicy: "Cluster",
      internalTrafficPolicy: "Cluster",
      ipFamilies: ["IPv6"],
      ipFamilyPolicy: "SingleStack",
      ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
      selector: { app: `cold-${i}` },
      sessionAffinity: "None",
      type: "LoadBalancer",
    },
    status: {
      conditions: [
        {
          lastTransitionTime: "2026-12-01T15:05:29Z",
          message: `assigned 2001:db8:b::${i.toString(16)} from pool bench`,
          reason: "Allocated",
          status: "True",
          type: "ironlb.dev/IPAllocated",
        },
      ],
      loadBalancer: { ingress: [{ ip: `2001:db8:b::${i.toString(16)}`, ipMode: "VIP" }] },
    },
  });
  // As the endpointslice controller writes them: three ready endpoints on three nodes.
  const slice = (i: number) => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `web-${i}-abcde`,
      generateName: `web-${i}-`,
      namespace: "default",
      uid: `c1c22052-f6df-4ff8-9c4b-${String(i).padStart(12, "0")}`,
      resourceVersion: String(5000 + i),
      generation: 3,
      creationTimestamp: "2026-12-01T15:05:17Z",
      labels: {
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": `web-${i}`,
      },
      annotations: { "endpoints.kubernetes.io/last-change-trigger-time": "2026-12-01T15:05:20Z" },
      ownerReferences: [
        {
          apiVersion: "v1",
          kind: "Service",
          name: `web-${i}`,
          uid: `b1c22052-f6df-4ff8-9c4b-${String(i).padStart(12, "0")}`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    addressType: "IPv4",
    endpoints: [0, 1, 2].map((j) => ({
      addresses: [`198.51.100.${64 + ((i + j) % 64)}`],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${j}`,
      targetRef: {
        kind: "Pod",
        name: `web-${i}-7d9f8c-${j}`,
        namespace: "default",
        uid: `d1c22052-f6df-4ff8-9c4b-${String(i * 3 + j).padStart(12, "0")}`,
      },
    })),
    ports: [{ name: "", port: 8080, protocol: "TCP" }],
  });
  // What the controller and the speaker read of each.
  const slimService = (o: ReturnType<typeof service>) => ({
    metadata: {
      name: o.metadata.name,
      namespace: o.metadata.namespace,
      uid: o.metadata.uid,
      resourceVersion: o.metadata.resourceVersion,
      annotations: o.metadata.annotations,
    },
    spec: {
      type: o.spec.type,
      ipFamilies: o.spec.ipFamilies,
      ipFamilyPolicy: o.spec.ipFamilyPolicy,
      externalTrafficPolicy: o.spec.externalTrafficPolicy,
      ports: o.spec.ports.map((p) => ({ port: p.port, protocol: p.protocol })),
      selector: o.spec.selector,
    },
    status: o.status,
  });
  const slimSlice = (o: ReturnType<typeof slice>) => ({
    metadata: {
      name: o.metadata.name,
      namespace: o.metadata.namespace,
      labels: { "kubernetes.io/service-name": o.metadata.labels["kubernetes.io/service-name"] },
    },
    addressType: o.addressType,
    endpoints: o.endpoints.map((e) => ({
      addresses: e.addresses,
      conditions: e.conditions,
      nodeName: e.nodeName,
    })),
    ports: o.ports,
  });
  const measureObjects = (make: string, slim: string | undefined) => {
    const script = `
      const make = ${make};
      const slim = ${slim ?? "undefined"};
      const texts = Array.from({ length: 10000 }, (_, i) => JSON.stringify(make(i)));
      for (let i = 0; i < 3; i++) globalThis.gc();
      const before = process.memoryUsage().heapUsed;
      const kept = texts.map((t) => { const o = JSON.parse(t); return slim ? slim(o) : o; });
      for (let i = 0; i < 3; i++) globalThis.gc();
      const after = process.memoryUsage().heapUsed;
      console.log(String((after - before) / kept.length));`;
    const r = spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(r.stderr);
    return Number(r.stdout.trim());
  };
  const rows: string[] = [
    "| cached object | heap bytes, as cached | slimmed to what is read | 10,000 of them, as cached → slim |",
    "| --- | --- | --- | --- |",
  ];
  for (const [label, make, slim] of [
    ["Service (LoadBalancer, assigned)", service.toString(), slimService.toString()],
    ["EndpointSlice (3 endpoints)", slice.toString(), slimSlice.toString()],
  ] as const) {
    const full = measureObjects(make, undefined);
    const small = measureObjects(make, slim);
    rows.push(
      `| ${label} | ${full.toFixed(0)} | ${small.toFixed(0)} | ${((full * 1e4) / 2 ** 20).toFixed(1)} MiB → ${((small * 1e4) / 2 ** 20).toFixed(1)} MiB |`,
    );
  }
  return rows.join("\n");
}
