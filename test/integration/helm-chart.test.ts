// The Helm chart against the real helm binary and kube-apiserver: it lints and renders, its
// schema rejects bad values, it installs (CRDs, workloads, RBAC, a sample pool), the RBAC
// it grants is exactly enough for the real controller and speaker running with the
// ServiceAccounts' own tokens, upgrades keep the heartbeat key, and uninstall cleans up.
import { execFile } from "node:child_process";
import {
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  AppsV1Api,
  CoordinationV1Api,
  type KubernetesObject,
  loadYaml,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1DaemonSet,
  type V1Deployment,
  type V1Job,
  type V1PolicyRule,
} from "@kubernetes/client-node";
import { load as loadPlainYaml } from "js-yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient } from "../../src/k8s/client.ts";
import { httpStatus } from "../../src/k8s/errors.ts";
import { readShutdownEvidence } from "../../src/speaker/shutdown-evidence.ts";
import { shutdownIntent } from "../../src/speaker/shutdown-intent.ts";
import {
  type Component,
  clients,
  createNamespace,
  createService,
  getPool,
  getService,
  healthPortOf,
  repoRoot,
  startComponent,
  waitFor,
  waitForEvent,
  waitForIPs,
} from "../support/cluster.ts";

const exec = promisify(execFile);
const chartDir = join(repoRoot, "charts/ironlb");
const binDir = inject("binDir");
const adminKubeconfig = inject("kubeconfig");
const work = mkdtempSync(join(tmpdir(), "ironlb-helm-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm or kubectl against the test control plane; never throws on a non-zero exit. */
async function run(tool: "helm" | "kubectl", args: string[]): Promise<RunResult> {
  try {
    const { stdout, stderr } = await exec(join(binDir, tool), args, {
      env: {
        ...process.env,
        KUBECONFIG: adminKubeconfig,
        // Keep helm's caches and repository config out of the user's home.
        HELM_CACHE_HOME: join(work, "helm-cache"),
        HELM_CONFIG_HOME: join(work, "helm-config"),
        HELM_DATA_HOME: join(work, "helm-data"),
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : -1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}

async function ok(tool: "helm" | "kubectl", args: string[]): Promise<string> {
  const r = await run(tool, args);
  if (r.code !== 0)
    throw new Error(`${tool} ${args.join(" ")} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Parses a multi-document manifest, skipping documents that hold only comments. */
function parseManifests(text: string): KubernetesObject[] {
  return text
    .split(/^---\s*$/m)
    .filter((doc) => doc.split("\n").some((l) => l.trim() !== "" && !l.trim().startsWith("#")))
    .map((doc) => loadYaml<KubernetesObject>(doc));
}

function find<T extends KubernetesObject>(objs: KubernetesObject[], kind: string, suffix = ""): T {
  const o = objs.find((x) => x.kind === kind && (x.metadata?.name ?? "").endsWith(suffix));
  if (!o) throw new Error(`no ${kind} *${suffix} in the rendered chart`);
  return o as T;
}

/** Writes a values file for helm (JSON is valid YAML). */
function valuesFile(name: string, values: unknown): string {
  const path = join(work, name);
  writeFileSync(path, JSON.stringify(values, null, 2));
  return path;
}

// helm is built with its Makefile's Kubernetes version flags, so no --kube-version is
// needed anywhere (it defaults to a current Kubernetes, not 1.20).

describe("helm chart", () => {
  describe("without a cluster", () => {
    const withPools = valuesFile("pools.json", {
      pools: [
        {
          name: "lan",
          labels: { "ironlb.dev/announce": "lan" },
          spec: { addresses: ["192.0.2.100-192.0.2.150"], avoidBuggyIPs: true },
        },
      ],
      l2Advertisements: [
        {
          name: "lan",
          spec: { ipAddressPoolSelectors: [{ matchLabels: { "ironlb.dev/announce": "lan" } }] },
        },
      ],
      bgpPeers: [
        {
          name: "tor",
          spec: { myASN: 64512, peerASN: 64500, peerAddress: "192.0.2.1", holdTime: "9s" },
        },
      ],
      bgpAdvertisements: [
        { name: "lan-bgp", spec: { ipAddressPools: ["lan"], communities: ["no-export"] } },
      ],
    });

    it("lints strictly, with default values and with pools", async () => {
      await ok("helm", ["lint", "--strict", chartDir]);
      await ok("helm", ["lint", "--strict", chartDir, "-f", withPools]);
    });

    it("takes its CRDs from config/crd (symlinks Helm follows, also into a package)", async () => {
      const crdDir = join(repoRoot, "config/crd");
      const sources = readdirSync(crdDir).filter((f) => f.endsWith(".yaml"));
      const links = readdirSync(join(chartDir, "crds"));
      expect(links.sort()).toEqual(sources.sort());
      for (const f of links) {
        const p = join(chartDir, "crds", f);
        expect(lstatSync(p).isSymbolicLink(), `${p} is a symlink`).toBe(true);
        expect(resolve(join(chartDir, "crds"), readlinkSync(p))).toBe(join(crdDir, f));
      }
      const expected = sources.flatMap((f) =>
        parseManifests(readFileSync(join(crdDir, f), "utf8")),
      );
      expect(expected.map((o) => o.kind)).toEqual(sources.map(() => "CustomResourceDefinition"));
      expect(parseManifests(await ok("helm", ["show", "crds", chartDir]))).toEqual(expected);
      // A packaged chart (what gets published) holds the files' contents, not links.
      await ok("helm", ["package", chartDir, "-d", work]);
      const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
        version: string;
      };
      const tgz = join(work, `ironlb-${pkg.version}.tgz`);
      expect(parseManifests(await ok("helm", ["show", "crds", tgz]))).toEqual(expected);
      const chart = await ok("helm", ["show", "chart", chartDir]);
      expect(chart).toContain(`appVersion: ${pkg.version}`);
      expect(chart).toContain("kubeVersion: '>=1.30.0-0'");
    });

    it("renders the components with default values", async () => {
      const objs = parseManifests(
        await ok("helm", ["template", "lb", chartDir, "-n", "lb-system"]),
      );
      const kinds = objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort();
      expect(kinds).toEqual(
        [
          "ClusterRole/lb-ironlb-controller",
          "ClusterRole/lb-ironlb-speaker",
          "ClusterRoleBinding/lb-ironlb-controller",
          "ClusterRoleBinding/lb-ironlb-speaker",
          "DaemonSet/lb-ironlb-speaker",
          "Deployment/lb-ironlb-controller",
          "PodDisruptionBudget/lb-ironlb-controller",
          "Role/lb-ironlb-controller",
          "Role/lb-ironlb-speaker",
          "RoleBinding/lb-ironlb-controller",
          "RoleBinding/lb-ironlb-speaker",
          "ServiceAccount/lb-ironlb-controller",
          "ServiceAccount/lb-ironlb-speaker",
          // Speakers write only their own node's Lease (speaker-lease-policy.yaml).
          "ValidatingAdmissionPolicy/lb-ironlb-speaker-leases",
          "ValidatingAdmissionPolicyBinding/lb-ironlb-speaker-leases",
          // ...and only what concerns their node in records (speaker-record-policy.yaml).
          "ValidatingAdmissionPolicy/lb-ironlb-speaker-records",
          "ValidatingAdmissionPolicyBinding/lb-ironlb-speaker-records",
          // The post-delete hook (helm template shows hooks too).
          "ClusterRole/lb-ironlb-cleanup",
          "ClusterRoleBinding/lb-ironlb-cleanup",
          "Job/lb-ironlb-cleanup",
          "Role/lb-ironlb-cleanup",
          "RoleBinding/lb-ironlb-cleanup",
          "ServiceAccount/lb-ironlb-cleanup",
        ].sort(),
      );

      const dep = find<V1Deployment>(objs, "Deployment");
      expect(dep.spec?.replicas).toBe(2);
      const pod = dep.spec!.template.spec!;
      const c = pod.containers[0]!;
      expect(c.args).toEqual(expect.arrayContaining(["controller", "--namespace=lb-system"]));
      expect(c.args).not.toContain("--no-leader-elect");
      // The controller makes the heartbeat Secret; the chart renders no key.
      expect(c.args).toEqual(
        expect.arrayContaining([
          "--heartbeat-secret=lb-ironlb-heartbeat",
          "--heartbeat-secret-key=secret",
        ]),
      );
      expect(c.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value])).toEqual([
        ["POD_NAME", "metadata.name"],
        ["POD_NAMESPACE", "metadata.namespace"],
        ["LOG_LEVEL", "info"],
      ]);
      expect(c.ports?.[0]?.containerPort).toBe(7472);
      expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
      expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(c.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(c.securityContext?.capabilities?.add).toBeUndefined();

      const ds = find<V1DaemonSet>(objs, "DaemonSet");
      const sp = ds.spec!.template.spec!;
      const s = sp.containers[0]!;
      expect(sp.hostNetwork).toBe(true);
      expect(sp.dnsPolicy).toBe("ClusterFirstWithHostNet");
      expect(ds.spec?.updateStrategy).toEqual({
        type: "RollingUpdate",
        rollingUpdate: { maxUnavailable: 1 },
      });
      expect(sp.tolerations?.map((t) => t.key)).toContain("node-role.kubernetes.io/control-plane");
      expect(s.securityContext?.capabilities).toEqual({ drop: ["ALL"], add: ["NET_RAW"] });
      expect(s.securityContext?.readOnlyRootFilesystem).toBe(true);
      expect(s.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value])).toEqual([
        ["NODE_NAME", "spec.nodeName"],
        ["NODE_IP", "status.hostIP"],
        ["POD_NAMESPACE", "metadata.namespace"],
        ["LOG_LEVEL", "info"],
      ]);
      expect(s.args).toEqual(
        expect.arrayContaining([
          "speaker",
          "--namespace=lb-system",
          "--heartbeat-port=7947",
          "--heartbeat-secret-file=/etc/ironlb/heartbeat/secret",
          "--api-qps=50",
          "--api-burst=100",
          "--bgp-drain-delay=5",
          "--daemonset=lb-ironlb-speaker",
        ]),
      );
      expect(c.args).toEqual(expect.arrayContaining(["--api-qps=500", "--api-burst=1000"]));
      expect(s.ports?.find((p) => p.name === "heartbeat")).toMatchObject({
        containerPort: 7947,
        protocol: "UDP",
      });
      expect(s.livenessProbe?.httpGet?.port).toBe("monitoring");
      expect(s.ports?.find((p) => p.name === "monitoring")?.containerPort).toBe(7473);
      expect(sp.volumes?.[0]?.secret?.secretName).toBe("lb-ironlb-heartbeat");
      expect(ds.spec?.template.metadata?.annotations).toBeUndefined();

      // The leader Lease is the only one the controller may update, and only here.
      const role = find<KubernetesObject & { rules: V1PolicyRule[] }>(objs, "Role", "controller");
      expect(role.metadata?.namespace).toBe("lb-system");
      expect(role.rules).toContainEqual(
        expect.objectContaining({ resourceNames: ["ironlb-controller"], verbs: ["get", "update"] }),
      );
      expect(role.rules).toContainEqual({
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["lb-ironlb-heartbeat"],
        verbs: ["get"],
      });

      // The uninstall hook: after the workloads are deleted, with its own rights.
      const job = find<V1Job>(objs, "Job", "cleanup");
      expect(job.metadata?.annotations).toMatchObject({
        "helm.sh/hook": "post-delete",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
      });
      expect(job.spec?.template.spec?.containers[0]?.args).toEqual([
        "cleanup",
        "--namespace=lb-system",
        "--lb-class=ironlb.dev/lb",
        "--heartbeat-secret=lb-ironlb-heartbeat",
        "--wait=60",
        "--keep-addresses",
      ]);
      for (const kind of ["ServiceAccount", "ClusterRole", "Role", "RoleBinding"])
        expect(find(objs, kind, "cleanup").metadata?.annotations?.["helm.sh/hook"]).toBe(
          "post-delete",
        );
    });

    it("passes cleanup.keepAddresses to the uninstall hook; a missing key keeps addresses", async () => {
      const hookArgs = async (...set: string[]) => {
        const objs = parseManifests(
          await ok("helm", [
            "template",
            "lb",
            chartDir,
            ...set.flatMap((v) => ["--set", v]),
            "--show-only",
            "templates/cleanup-hook.yaml",
          ]),
        );
        return find<V1Job>(objs, "Job").spec?.template.spec?.containers[0]?.args ?? [];
      };
      const keeps = (args: string[]) =>
        [args.includes("--keep-addresses"), args.includes("--no-keep-addresses")].join();
      expect(keeps(await hookArgs())).toBe("true,false");
      expect(keeps(await hookArgs("cleanup.keepAddresses=true"))).toBe("true,false");
      expect(keeps(await hookArgs("cleanup.keepAddresses=false"))).toBe("false,true");
      // What `helm upgrade --reuse-values` from a chart without the key renders: no key.
      expect(keeps(await hookArgs("cleanup.keepAddresses=null"))).toBe("true,false");
      const bad = await run("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "cleanup.keepAddresses=no",
      ]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("at '/cleanup/keepAddresses'");
    });

    it("renders the same manifests every time (no generated key: GitOps diffs stay empty)", async () => {
      const args = ["template", "lb", chartDir, "-n", "lb-system"];
      const first = await ok("helm", args);
      expect(await ok("helm", args)).toBe(first);
      expect(first).not.toContain("kind: Secret");
      // And without a cluster or --kube-version, lint passes (Chart.yaml needs >= 1.30).
      await ok("helm", ["lint", chartDir]);
    });

    it("renders the speakers' Lease policy where the cluster serves it, unless turned off", async () => {
      const policyKinds = async (...args: string[]) =>
        parseManifests(await ok("helm", ["template", "lb", chartDir, "-n", "lb-system", ...args]))
          .filter((o) => o.kind?.startsWith("ValidatingAdmissionPolicy"))
          .filter((o) => o.metadata?.name?.endsWith("-leases"))
          .map((o) => `${o.kind}/${o.metadata?.name}`);
      const both = [
        "ValidatingAdmissionPolicy/lb-ironlb-speaker-leases",
        "ValidatingAdmissionPolicyBinding/lb-ironlb-speaker-leases",
      ];
      // Against a cluster Helm knows its kinds: one that serves the policy kind...
      const lease = "--api-versions=coordination.k8s.io/v1/Lease";
      const vap = "--api-versions=admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
      expect(await policyKinds(lease, vap)).toEqual(both);
      // ...and one that does not (turned off with --runtime-config).
      expect(await policyKinds(lease)).toEqual([]);
      // Off by value, or with the chart's RBAC.
      expect(await policyKinds("--set", "rbac.speakerLeasePolicy=false")).toEqual([]);
      expect(await policyKinds("--set", "rbac.create=false")).toEqual([]);
      // The ServiceAccount it binds is the speakers', whatever its name.
      const objs = parseManifests(
        await ok("helm", [
          "template",
          "lb",
          chartDir,
          "-n",
          "lb-system",
          "--set",
          "speaker.serviceAccount.name=my-speaker",
        ]),
      );
      const policy = find<
        KubernetesObject & { spec: { matchConditions: { expression: string }[] } }
      >(objs, "ValidatingAdmissionPolicy", "-leases");
      expect(policy.spec.matchConditions[0]?.expression).toBe(
        'request.userInfo.username == "system:serviceaccount:lb-system:my-speaker"',
      );
    });

    it("renders the speakers' record policy (IPAnnouncements, BGPSessionStates) where the cluster serves it, unless turned off", async () => {
      const policies = async (...args: string[]) =>
        parseManifests(await ok("helm", ["template", "lb", chartDir, "-n", "lb-system", ...args]))
          .filter((o) => o.kind?.startsWith("ValidatingAdmissionPolicy"))
          .filter((o) => o.metadata?.name?.endsWith("-records"))
          .map((o) => `${o.kind}/${o.metadata?.name}`);
      const lease = "--api-versions=coordination.k8s.io/v1/Lease";
      const vap = "--api-versions=admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
      expect(await policies(lease, vap)).toEqual([
        "ValidatingAdmissionPolicy/lb-ironlb-speaker-records",
        "ValidatingAdmissionPolicyBinding/lb-ironlb-speaker-records",
      ]);
      expect(await policies(lease)).toEqual([]);
      expect(await policies("--set", "rbac.speakerRecordPolicy=false")).toEqual([]);
      expect(await policies("--set", "rbac.create=false")).toEqual([]);
    });

    it("takes the values users expect: RBAC, ServiceAccounts, security contexts, monitoring", async () => {
      const values = valuesFile("users.json", {
        rbac: { create: false },
        controller: {
          serviceAccount: { create: false, name: "my-controller" },
          securityContext: { readOnlyRootFilesystem: false },
          podSecurityContext: { runAsUser: 1000, runAsGroup: 1000 },
        },
        speaker: {
          serviceAccount: { name: "my-speaker", annotations: { "example.com/role": "lb" } },
          securityContext: { seccompProfile: { type: "Localhost", localhostProfile: "lb.json" } },
        },
        cleanup: { enabled: false },
        metrics: {
          serviceMonitor: { enabled: true, labels: { release: "prom" } },
          podMonitor: { enabled: true, interval: "15s" },
          prometheusRule: { enabled: true, poolUsageThreshold: 0.8 },
        },
      });
      const objs = parseManifests(await ok("helm", ["template", "lb", chartDir, "-f", values]));
      const kinds = objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort();
      expect(kinds).toEqual(
        [
          "DaemonSet/lb-ironlb-speaker",
          "Deployment/lb-ironlb-controller",
          "PodDisruptionBudget/lb-ironlb-controller",
          "ServiceAccount/my-speaker",
          "Service/lb-ironlb-controller-metrics",
          "Service/lb-ironlb-speaker-metrics",
          "ServiceMonitor/lb-ironlb-controller",
          "ServiceMonitor/lb-ironlb-speaker",
          "PodMonitor/lb-ironlb-controller",
          "PodMonitor/lb-ironlb-speaker",
          "PrometheusRule/lb-ironlb",
        ].sort(),
      );
      const dep = find<V1Deployment>(objs, "Deployment");
      const pod = dep.spec!.template.spec!;
      expect(pod.serviceAccountName).toBe("my-controller");
      // Overrides merge with the defaults.
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(pod.containers[0]!.securityContext).toMatchObject({
        readOnlyRootFilesystem: false,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
      });
      const ds = find<V1DaemonSet>(objs, "DaemonSet");
      expect(ds.spec?.template.spec?.serviceAccountName).toBe("my-speaker");
      expect(ds.spec?.template.spec?.containers[0]?.securityContext).toMatchObject({
        capabilities: { drop: ["ALL"], add: ["NET_RAW"] },
        seccompProfile: { type: "Localhost", localhostProfile: "lb.json" },
      });
      expect(find(objs, "ServiceAccount", "my-speaker").metadata?.annotations).toEqual({
        "example.com/role": "lb",
      });
      const sm = find<KubernetesObject & { spec: Record<string, unknown> }>(
        objs,
        "ServiceMonitor",
        "speaker",
      );
      expect(sm.apiVersion).toBe("monitoring.coreos.com/v1");
      expect(sm.metadata?.labels?.release).toBe("prom");
      expect(sm.spec).toMatchObject({
        selector: { matchLabels: { "app.kubernetes.io/component": "speaker" } },
        endpoints: [{ port: "monitoring", path: "/metrics" }],
      });
      const svc = find<KubernetesObject & { spec: { ports: { port: number }[] } }>(
        objs,
        "Service",
        "speaker-metrics",
      );
      expect(svc.spec.ports[0]?.port).toBe(7473);
      const pm = find<KubernetesObject & { spec: Record<string, unknown> }>(
        objs,
        "PodMonitor",
        "controller",
      );
      expect(pm.spec).toMatchObject({
        podMetricsEndpoints: [{ port: "monitoring", interval: "15s" }],
      });
      const rule = find<
        KubernetesObject & { spec: { groups: { rules: { alert: string; expr: string }[] }[] } }
      >(objs, "PrometheusRule");
      const rules = rule.spec.groups[0]!.rules;
      expect(rules.map((r) => r.alert)).toEqual([
        "IronlbPoolNearlyExhausted",
        "IronlbAllocationFailures",
        "IronlbSpeakerDown",
        "IronlbSpeakersAbsent",
        "IronlbNoLeader",
      ]);
      expect(rules[0]!.expr).toContain("> 0.8");
      expect(rules[2]!.expr).toBe('up{namespace="default", pod=~"lb-ironlb-speaker-.+"} == 0');
    });

    it("renders pools, L2Advertisements, BGPPeers and BGPAdvertisements from values, and an existing heartbeat Secret", async () => {
      const objs = parseManifests(await ok("helm", ["template", "lb", chartDir, "-f", withPools]));
      const pool = find(objs, "IPAddressPool", "lan") as KubernetesObject & {
        spec: unknown;
      };
      expect(pool.metadata?.labels?.["ironlb.dev/announce"]).toBe("lan");
      expect(pool.spec).toEqual({ addresses: ["192.0.2.100-192.0.2.150"], avoidBuggyIPs: true });
      expect(find(objs, "L2Advertisement", "lan")).toMatchObject({
        apiVersion: "ironlb.dev/v1beta1",
        spec: { ipAddressPoolSelectors: [{ matchLabels: { "ironlb.dev/announce": "lan" } }] },
      });
      expect(find(objs, "BGPPeer", "tor")).toMatchObject({
        apiVersion: "ironlb.dev/v1beta1",
        spec: { myASN: 64512, peerASN: 64500, peerAddress: "192.0.2.1", holdTime: "9s" },
      });
      expect(find(objs, "BGPAdvertisement", "lan-bgp")).toMatchObject({
        apiVersion: "ironlb.dev/v1beta1",
        spec: { ipAddressPools: ["lan"], communities: ["no-export"] },
      });

      const own = parseManifests(
        await ok("helm", [
          "template",
          "lb",
          chartDir,
          "--set",
          "speaker.heartbeat.existingSecret=mine,speaker.heartbeat.existingSecretKey=key",
        ]),
      );
      expect(own.some((o) => o.kind === "Secret")).toBe(false);
      const ds = find<V1DaemonSet>(own, "DaemonSet");
      expect(ds.spec?.template.spec?.volumes?.[0]?.secret).toMatchObject({ secretName: "mine" });
      expect(ds.spec?.template.spec?.containers[0]?.args).toContain(
        "--heartbeat-secret-file=/etc/ironlb/heartbeat/key",
      );
    });

    it("probes /readyz every 5 s unless told otherwise, and refuses a period under 1 s", async () => {
      const periods = async (...args: string[]) => {
        const objs = parseManifests(await ok("helm", ["template", "lb", chartDir, ...args]));
        const probe = (o: V1Deployment | V1DaemonSet) =>
          o.spec?.template.spec?.containers[0]?.readinessProbe?.periodSeconds;
        return {
          controller: probe(find<V1Deployment>(objs, "Deployment")),
          speaker: probe(find<V1DaemonSet>(objs, "DaemonSet")),
        };
      };
      expect(await periods()).toEqual({ controller: 5, speaker: 5 });
      expect(
        await periods(
          "--set",
          "controller.readinessPeriodSeconds=1,speaker.readinessPeriodSeconds=2",
        ),
      ).toEqual({ controller: 1, speaker: 2 });
      const r = await run("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "speaker.readinessPeriodSeconds=0",
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("readinessPeriodSeconds");
    });

    it("checks pool and advertisement specs in values by the CRDs' own field names", async () => {
      const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8"));
      const specOf = (key: string) =>
        Object.keys(schema.properties[key].items.allOf[1].properties.spec.properties).sort();
      const crdSpec = (file: string) => {
        const crd = loadPlainYaml(readFileSync(join(repoRoot, "config/crd", file), "utf8")) as {
          spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: object } } } }[] };
        };
        const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec as {
          properties: object;
        };
        return Object.keys(spec.properties).sort();
      };
      expect(specOf("pools")).toEqual(crdSpec("ironlb.dev_ipaddresspools.yaml"));
      expect(specOf("l2Advertisements")).toEqual(crdSpec("ironlb.dev_l2advertisements.yaml"));
      expect(specOf("bgpPeers")).toEqual(crdSpec("ironlb.dev_bgppeers.yaml"));
      expect(specOf("bgpAdvertisements")).toEqual(crdSpec("ironlb.dev_bgpadvertisements.yaml"));
    });

    it("rejects bad values with clear messages", async () => {
      const bad = await run("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "controller.replicas=two",
      ]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("at '/controller/replicas': got string, want integer");

      // What the apiserver would reject later, half-way through an install: refused up front.
      const refused: [string, string][] = [
        ["controller.resources.requests.memory=lots", "/controller/resources/requests/memory"],
        ["speaker.serviceAccount.name=My_Speaker", "/speaker/serviceAccount/name"],
        ["controller.priorityClassName=High Priority", "/controller/priorityClassName"],
        ["pools[0].name=LAN,pools[0].spec.addresses[0]=198.51.100.0/28", "/pools/0"],
        ["speaker.tolerations[0].operator=Exist", "/speaker/tolerations/0/operator"],
        ["controller.nodeSelector.disk=fast ssd", "/controller/nodeSelector/disk"],
        ["metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"],
        ["speaker.heartbeat.existingSecret=Mine", "/speaker/heartbeat/existingSecret"],
        ["controller.apiQps=-1", "/controller/apiQps"],
        ["speaker.apiBurst=0", "/speaker/apiBurst"],
        ["pools[0].name=lan,pools[0].spec.addresses[0]=lan", "/pools/0/spec/addresses/0"],
        [
          "pools[0].name=lan,pools[0].spec.addresses[0]=198.51.100.0/28,pools[0].spec.autoassign=false",
          "/pools/0/spec",
        ],
        [
          "l2Advertisements[0].name=lan,l2Advertisements[0].spec.interface[0]=eth0",
          "/l2Advertisements/0/spec",
        ],
        [
          "bgpPeers[0].name=tor,bgpPeers[0].spec.myASN=64512,bgpPeers[0].spec.peerASN=64500,bgpPeers[0].spec.peerAddress=192.0.2.1,bgpPeers[0].spec.holdTime=90",
          "/bgpPeers/0/spec/holdTime",
        ],
        // A host name where the CRD wants an address, an IPv6 router ID, and neither or
        // both of peerASN and dynamicASN: the apiserver would refuse the BGPPeer mid-install.
        [
          "bgpPeers[0].name=tor,bgpPeers[0].spec.myASN=64512,bgpPeers[0].spec.peerASN=64500,bgpPeers[0].spec.peerAddress=router.example",
          "/bgpPeers/0/spec/peerAddress",
        ],
        [
          "bgpPeers[0].name=tor,bgpPeers[0].spec.myASN=64512,bgpPeers[0].spec.peerASN=64500,bgpPeers[0].spec.peerAddress=192.0.2.1,bgpPeers[0].spec.routerID=2001:db8::1",
          "/bgpPeers/0/spec/routerID",
        ],
        [
          "bgpPeers[0].name=tor,bgpPeers[0].spec.myASN=64512,bgpPeers[0].spec.peerAddress=192.0.2.1",
          "/bgpPeers/0/spec': missing property 'peerASN",
        ],
        [
          "bgpPeers[0].name=tor,bgpPeers[0].spec.myASN=64512,bgpPeers[0].spec.peerASN=64500,bgpPeers[0].spec.dynamicASN=external,bgpPeers[0].spec.peerAddress=192.0.2.1",
          "/bgpPeers/0/spec': 'oneOf",
        ],
        [
          "bgpAdvertisements[0].name=a,bgpAdvertisements[0].spec.community[0]=no-export",
          "/bgpAdvertisements/0/spec",
        ],
      ];
      for (const [set, where] of refused) {
        const r = await run("helm", ["template", "lb", chartDir, "--set", set]);
        expect(r.code, set).not.toBe(0);
        expect(r.stderr, set).toContain(`at '${where}'`);
      }
      await ok("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "controller.resources.requests.memory=128Mi,controller.resources.requests.cpu=0.1",
      ]);
      await ok("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "bgpPeers[0].name=tor6,bgpPeers[0].spec.myASN=4200000001,bgpPeers[0].spec.dynamicASN=external,bgpPeers[0].spec.peerAddress=2001:db8::1,bgpPeers[0].spec.routerID=192.0.2.7",
      ]);

      const typo = await run("helm", ["template", "lb", chartDir, "--set", "ipMod=VIP"]);
      expect(typo.stderr).toContain("additional properties 'ipMod' not allowed");

      const unled = await run("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "controller.leaderElection.enabled=false",
      ]);
      expect(unled.stderr).toContain(
        "controller.replicas > 1 needs controller.leaderElection.enabled",
      );

      const old = await run("helm", ["template", "lb", chartDir, "--kube-version", "1.29.9"]);
      expect(old.stderr).toContain("chart requires kubeVersion: >=1.30.0-0");
    });
  });

  describe("against the apiserver", () => {
    const { kc, core, custom, ext } = clients();
    const apps = kc.makeApiClient(AppsV1Api);
    const policy = kc.makeApiClient(PolicyV1Api);
    const leases = kc.makeApiClient(CoordinationV1Api);
    const release = "lb";
    let ns = "";
    let svcNs = "";
    let pool = "";
    let installValues = "";
    const started: Component[] = [];

    beforeAll(async () => {
      ns = await createNamespace("helm");
      svcNs = await createNamespace("helm-svc");
      pool = `helm-${ns.split("-").slice(-2).join("-")}`;
      installValues = valuesFile("install.json", {
        // Only the sample pool's Services, so that other tests' Services never get its IPs.
        pools: [
          {
            name: pool,
            spec: {
              addresses: ["203.0.113.64/30"],
              serviceAllocation: { namespaces: [svcNs] },
            },
          },
        ],
      });
      await ok("helm", [
        "install",
        release,
        chartDir,
        "-n",
        ns,
        "-f",
        installValues,
        "--wait=false",
      ]);
    });

    afterAll(async () => {
      await Promise.all(started.map((c) => c.stop("SIGKILL")));
      // Namespaces are never deleted here (no controller-manager): leave no Service with an
      // IP behind for other test files' controllers to count.
      if (svcNs)
        await core.deleteNamespacedService({ name: "web", namespace: svcNs }).catch(() => {});
    });

    /**
     * A kubeconfig that authenticates as a ServiceAccount of the release, by its token;
     * bound to a pod (as a pod's projected token is) when one is given.
     */
    async function saKubeconfig(sa: string, pod?: { name: string; uid: string }): Promise<string> {
      const boundObjectRef = pod && { kind: "Pod", apiVersion: "v1", ...pod };
      const tr = await core.createNamespacedServiceAccountToken({
        name: sa,
        namespace: ns,
        body: { spec: { audiences: [], expirationSeconds: 3600, boundObjectRef } },
      });
      const cluster = kc.getCurrentCluster()!;
      const ca = readFileSync(adminKubeconfig, "utf8").match(
        /certificate-authority-data: (\S+)/,
      )?.[1];
      expect(ca).toBeTruthy();
      const path = join(work, `${sa}${pod ? `-${pod.name}` : ""}.kubeconfig`);
      writeFileSync(
        path,
        `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: ${cluster.server}
    certificate-authority-data: ${ca}
users:
- name: ${sa}
  user:
    token: ${tr.status!.token}
contexts:
- name: ${sa}
  context: { cluster: test, user: ${sa}, namespace: ${ns} }
current-context: ${sa}
`,
      );
      return path;
    }

    /**
     * The controller as the chart runs it: its Deployment's arguments and its ServiceAccount,
     * then what differs outside a pod (the last one wins).
     */
    async function chartController(instance: string): Promise<Component> {
      const dep = await apps.readNamespacedDeployment({
        name: `${release}-ironlb-controller`,
        namespace: ns,
      });
      const ctrl = startComponent([
        ...(dep.spec?.template.spec?.containers[0]?.args ?? []),
        "--kubeconfig",
        await saKubeconfig(`${release}-ironlb-controller`),
        "--instance",
        instance,
        "--health-port",
        "0",
        "--health-address",
        "127.0.0.1",
      ]);
      started.push(ctrl);
      return ctrl;
    }

    function logText(c: Component): string {
      return readFileSync(c.logFile, "utf8");
    }

    it("installs the CRDs (Established), the workloads and the sample pool", async () => {
      for (const name of ["ipaddresspools.ironlb.dev", "l2advertisements.ironlb.dev"]) {
        const crd = await ext.readCustomResourceDefinition({ name });
        expect(crd.status?.conditions?.find((c) => c.type === "Established")?.status).toBe("True");
      }
      const p = await getPool(pool);
      expect(p.spec.addresses).toEqual(["203.0.113.64/30"]);
      const dep = await apps.readNamespacedDeployment({
        name: `${release}-ironlb-controller`,
        namespace: ns,
      });
      expect(dep.spec?.template.spec?.containers[0]?.args).toContain(`--namespace=${ns}`);
      // No command of its own: the image's ENTRYPOINT (its node flags) is what the memory
      // figures in bench/RESULTS.md were measured with.
      expect(dep.spec?.template.spec?.containers[0]?.command).toBeUndefined();
      await apps.readNamespacedDaemonSet({ name: `${release}-ironlb-speaker`, namespace: ns });
      await policy.readNamespacedPodDisruptionBudget({
        name: `${release}-ironlb-controller`,
        namespace: ns,
      });
      // The heartbeat Secret is the controller's to make (next test), not Helm's.
      await expect(
        core.readNamespacedSecret({ name: `${release}-ironlb-heartbeat`, namespace: ns }),
      ).rejects.toMatchObject({ code: 404 });
    });

    it("gives the controller enough RBAC to do its whole job", async () => {
      const ctrl = await chartController("helm-ctrl");
      await createService(svcNs, "web", { annotations: { "ironlb.dev/address-pool": pool } });
      try {
        expect(await waitForIPs(svcNs, "web")).toEqual(["203.0.113.64"]);
        await waitForEvent(svcNs, "web", "IPAllocated", "203.0.113.64");
        const status = await waitFor("pool status", async () => {
          const s = (await getPool(pool)).status;
          return s?.assignedIPv4 === 1 ? s : undefined;
        });
        expect(status.availableIPv4).toBe(3);
        const lease = await leases.readNamespacedLease({
          name: "ironlb-controller",
          namespace: ns,
        });
        expect(lease.spec?.holderIdentity).toBe("helm-ctrl");
        const secret = await waitFor("the heartbeat Secret", () =>
          core.readNamespacedSecret({ name: `${release}-ironlb-heartbeat`, namespace: ns }),
        );
        expect(Buffer.from(secret.data?.secret ?? "", "base64").length).toBeGreaterThanOrEqual(16);
      } catch (err) {
        throw new Error(`${(err as Error).message}\ncontroller log:\n${logText(ctrl)}`);
      }
      expect(logText(ctrl)).not.toMatch(/forbidden/i);
      await ctrl.stop();
    });

    it("gives the speaker enough RBAC to join and watch everything", async () => {
      const node = `helm-node-${process.pid}`;
      const speaker = startComponent([
        "speaker",
        "--kubeconfig",
        await saKubeconfig(`${release}-ironlb-speaker`),
        "--namespace",
        ns,
        "--node-name",
        node,
        "--heartbeat-port",
        "0",
        "--health-port",
        "0",
        "--health-address",
        "127.0.0.1",
      ]);
      started.push(speaker);
      try {
        // "speaker ready" comes after every informer (Services, EndpointSlices, Nodes, pools,
        // L2Advertisements, Leases) has listed, and after its own Lease was written.
        await waitFor("speaker ready", () => speaker.logs().some((l) => l.msg === "speaker ready"));
        const lease = await leases.readNamespacedLease({
          name: `ironlb-speaker-${node}`,
          namespace: ns,
        });
        expect(lease.spec?.holderIdentity).toBe(node);
      } catch (err) {
        throw new Error(`${(err as Error).message}\nspeaker log:\n${logText(speaker)}`);
      }
      // A clean stop deletes the Lease: that needs the delete verb too.
      expect(await speaker.stop()).toBe(0);
      await expect(
        leases.readNamespacedLease({ name: `ironlb-speaker-${node}`, namespace: ns }),
      ).rejects.toMatchObject({ code: 404 });
      expect(logText(speaker)).not.toMatch(/forbidden/i);
    });

    it("lets the speaker tell a restart from a departure at SIGTERM, with its own token and the chart's --daemonset", async () => {
      const ds = await apps.readNamespacedDaemonSet({
        name: `${release}-ironlb-speaker`,
        namespace: ns,
      });
      const arg = ds.spec?.template.spec?.containers[0]?.args?.find((a) =>
        a.startsWith("--daemonset="),
      );
      expect(arg).toBe(`--daemonset=${release}-ironlb-speaker`);
      const api = KubeClient.load(await saKubeconfig(`${release}-ironlb-speaker`));
      const node = `gr-node-${process.pid}`;
      // A node the DaemonSet selects (the chart's nodeSelector).
      const labels = ds.spec?.template.spec?.nodeSelector ?? {};
      await core.createNode({ body: { metadata: { name: node, labels } } });
      try {
        const read = () =>
          readShutdownEvidence(api, { namespace: ns, node, daemonSet: arg!.split("=")[1] });
        const rolling = await read();
        expect(rolling.error).toBeUndefined();
        expect(shutdownIntent(rolling)).toEqual({
          restart: true,
          reason: `DaemonSet ${release}-ironlb-speaker stays and this node is not leaving: a restart`,
        });
        // kubectl cordon (as before a reboot): a departure, read fresh (not from a cache).
        await core.patchNode(
          { name: node, body: { spec: { unschedulable: true } } },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
        expect(shutdownIntent(await read())).toMatchObject({
          restart: false,
          reason: "this node is cordoned (kubectl cordon or drain)",
        });
        // A DaemonSet the token may not read: the safe side, and the log says why.
        const forbidden = await readShutdownEvidence(api, {
          namespace: ns,
          node,
          daemonSet: "someone-else",
        });
        expect(forbidden.error).toMatch(/^HTTP 403: /);
        expect(shutdownIntent(forbidden).restart).toBe(false);
      } finally {
        await core.deleteNode({ name: node });
      }
    });

    it("keeps the controller's Lease out of the speakers' reach, and each speaker to its own Lease", async () => {
      const sa = `${release}-ironlb-speaker`;
      const leasePath = (name = "") =>
        `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases${name ? `/${name}` : ""}`;
      const leaseBody = (name: string, holder: string) => ({
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace: ns },
        spec: { holderIdentity: holder, leaseDurationSeconds: 6 },
      });
      /** The status and the API server's message of a request, "ok" when it succeeded. */
      const outcome = async (p: Promise<unknown>) =>
        p.then(
          () => "ok",
          (err: unknown) =>
            `${httpStatus(err)}: ${(err as { body?: { message?: string } }).body?.message}`,
        );

      // The controller's leader Lease (the controller test above took it; made here if not).
      const controllerLease = { name: "ironlb-controller", namespace: ns };
      await leases
        .createNamespacedLease({ namespace: ns, body: leaseBody("ironlb-controller", "helm-ctrl") })
        .catch((err: { code?: number }) => {
          if (err.code !== 409) throw err;
        });
      const holder = (await leases.readNamespacedLease(controllerLease)).spec?.holderIdentity;

      // A token as an admin makes it (not bound to a pod): speaker Lease names only.
      const plain = KubeClient.load(await saKubeconfig(sa));
      const notSpeakerLease = (name: string) =>
        `403: leases.coordination.k8s.io "${name}" is forbidden: ValidatingAdmissionPolicy '${sa}-leases' with binding '${sa}-leases' denied request: the speaker may write only speaker Leases (ironlb-speaker-<node>), not ${name}`;
      // The policy is in force once the API server has loaded it: a dry run says when. (On
      // a chart without it, the assertions below show what got through.)
      await waitFor("the speaker Lease policy to be in force", async () =>
        (await outcome(
          plain.request("PATCH", leasePath("ironlb-controller"), {
            body: { spec: { holderIdentity: "evil" } },
            contentType: "application/merge-patch+json",
            query: { dryRun: "All" },
          }),
        )) !== "ok"
          ? true
          : undefined,
      ).catch(() => undefined);
      expect(
        await outcome(
          plain.mergePatch(leasePath("ironlb-controller"), { spec: { holderIdentity: "evil" } }),
        ),
      ).toBe(notSpeakerLease("ironlb-controller"));
      expect(await outcome(plain.delete(leasePath("ironlb-controller")))).toBe(
        notSpeakerLease("ironlb-controller"),
      );
      expect(await outcome(plain.create(leasePath(), leaseBody("ironlb-evil", "x")))).toBe(
        notSpeakerLease("ironlb-evil"),
      );
      expect((await leases.readNamespacedLease(controllerLease)).spec?.holderIdentity).toBe(holder);

      // A speaker pod's own token names its node: that node's Lease only.
      const node = `vap-node-${process.pid}`;
      const other = `vap-other-${process.pid}`;
      await core.createNode({ body: { metadata: { name: node } } });
      const pod = await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: "speaker-vap" },
          spec: {
            nodeName: node,
            serviceAccountName: sa,
            containers: [{ name: "speaker", image: "ironlb" }],
          },
        },
      });
      try {
        const cfg = await saKubeconfig(sa, { name: pod.metadata!.name!, uid: pod.metadata!.uid! });
        const whoami = JSON.parse(
          await ok("kubectl", ["--kubeconfig", cfg, "auth", "whoami", "-o", "json"]),
        );
        expect(whoami.status.userInfo.extra["authentication.kubernetes.io/node-name"]).toEqual([
          node,
        ]);
        const bound = KubeClient.load(cfg);
        await leases.createNamespacedLease({
          namespace: ns,
          body: leaseBody(`ironlb-speaker-${other}`, other),
        });
        const notOwn = (name: string) =>
          `403: leases.coordination.k8s.io "${name}" is forbidden: ValidatingAdmissionPolicy '${sa}-leases' with binding '${sa}-leases' denied request: the speaker on node ${node} may write only its own Lease ironlb-speaker-${node}, not ${name}`;
        expect(
          await outcome(
            bound.mergePatch(leasePath(`ironlb-speaker-${other}`), {
              spec: { holderIdentity: node },
            }),
          ),
        ).toBe(notOwn(`ironlb-speaker-${other}`));
        expect(await outcome(bound.delete(leasePath(`ironlb-speaker-${other}`)))).toBe(
          notOwn(`ironlb-speaker-${other}`),
        );
        expect(await outcome(bound.delete(leasePath("ironlb-controller")))).toBe(
          notSpeakerLease("ironlb-controller"),
        );
        // Its own Lease, naming another node as holder: refused too.
        expect(
          await outcome(bound.create(leasePath(), leaseBody(`ironlb-speaker-${node}`, other))),
        ).toBe(
          `403: leases.coordination.k8s.io "ironlb-speaker-${node}" is forbidden: ValidatingAdmissionPolicy '${sa}-leases' with binding '${sa}-leases' denied request: a speaker Lease must name its own node in spec.holderIdentity: ironlb-speaker-${node} cannot hold "${other}"`,
        );

        // The real speaker with that token creates, renews and, stopping, deletes its Lease.
        const speaker = startComponent([
          "speaker",
          "--kubeconfig",
          cfg,
          "--namespace",
          ns,
          "--node-name",
          node,
          "--heartbeat-port",
          "0",
          "--health-port",
          "0",
          "--health-address",
          "127.0.0.1",
          "--lease-renew",
          "1",
        ]);
        started.push(speaker);
        try {
          await waitFor("speaker ready", () =>
            speaker.logs().some((l) => l.msg === "speaker ready"),
          );
          const own = { name: `ironlb-speaker-${node}`, namespace: ns };
          const first = (await leases.readNamespacedLease(own)).spec?.renewTime;
          await waitFor("a renewal", async () => {
            const t = (await leases.readNamespacedLease(own)).spec?.renewTime;
            return t && String(t) !== String(first) ? true : undefined;
          });
        } catch (err) {
          throw new Error(`${(err as Error).message}\nspeaker log:\n${logText(speaker)}`);
        }
        expect(await speaker.stop()).toBe(0);
        await expect(
          leases.readNamespacedLease({ name: `ironlb-speaker-${node}`, namespace: ns }),
        ).rejects.toMatchObject({ code: 404 });
        expect(logText(speaker)).not.toMatch(/forbidden/i);
      } finally {
        await leases
          .deleteNamespacedLease({ name: `ironlb-speaker-${other}`, namespace: ns })
          .catch(() => {});
        await core.deleteNamespacedPod({
          name: "speaker-vap",
          namespace: ns,
          gracePeriodSeconds: 0,
        });
        await core.deleteNode({ name: node });
      }
    });

    it("grants nothing beyond what the components use", async () => {
      const canI = async (sa: string, args: string[]) => {
        const r = await run("kubectl", [
          "auth",
          "can-i",
          ...args,
          `--as=system:serviceaccount:${ns}:${release}-ironlb-${sa}`,
        ]);
        return r.stdout.trim();
      };
      const cases: [string, string[], "yes" | "no"][] = [
        ["controller", ["patch", "services", "--subresource=status", "-n", svcNs], "yes"],
        ["controller", ["update", "leases/ironlb-controller", "-n", ns], "yes"],
        ["controller", ["update", "leases/other", "-n", ns], "no"],
        ["controller", ["update", "leases/ironlb-controller", "-n", "default"], "no"],
        ["controller", ["create", "leases", "-n", "default"], "no"],
        ["controller", ["patch", "services", "-n", svcNs], "no"],
        ["controller", ["delete", "services", "-n", svcNs], "no"],
        ["controller", ["get", "secrets", "-n", ns], "no"],
        ["controller", ["get", `secrets/${release}-ironlb-heartbeat`, "-n", ns], "yes"],
        ["controller", ["update", `secrets/${release}-ironlb-heartbeat`, "-n", ns], "no"],
        ["controller", ["create", "secrets", "-n", ns], "yes"],
        ["controller", ["create", "secrets", "-n", "default"], "no"],
        ["controller", ["list", "secrets", "--all-namespaces"], "no"],
        ["controller", ["create", "ipaddresspools.ironlb.dev"], "no"],
        ["controller", ["patch", "ipaddresspools.ironlb.dev"], "no"],
        // The Services' Announceable condition: it reads what the speakers decide from.
        ["controller", ["list", "nodes"], "yes"],
        ["controller", ["patch", "nodes"], "no"],
        ["controller", ["watch", "endpointslices.discovery.k8s.io", "--all-namespaces"], "yes"],
        ["controller", ["watch", "l2advertisements.ironlb.dev"], "yes"],
        ["controller", ["patch", "l2advertisements.ironlb.dev"], "no"],
        ["controller", ["watch", "leases", "-n", ns], "yes"],
        ["controller", ["list", "leases", "-n", "default"], "no"],
        ["speaker", ["delete", "leases", "-n", ns], "yes"],
        ["speaker", ["patch", "leases", "-n", ns], "yes"],
        ["speaker", ["update", "leases", "-n", ns], "no"],
        ["speaker", ["patch", "services", "-n", svcNs], "no"],
        ["speaker", ["create", "ipannouncements.ironlb.dev"], "yes"],
        ["speaker", ["patch", "ipannouncements.ironlb.dev"], "yes"],
        ["speaker", ["watch", "bgppeers.ironlb.dev"], "yes"],
        ["speaker", ["list", "bgpadvertisements.ironlb.dev"], "yes"],
        ["speaker", ["patch", "bgppeers.ironlb.dev"], "no"],
        ["speaker", ["watch", "bfdprofiles.ironlb.dev"], "yes"],
        ["speaker", ["patch", "bfdprofiles.ironlb.dev"], "no"],
        ["speaker", ["create", "bgpsessionstates.ironlb.dev"], "yes"],
        ["speaker", ["patch", "bgpsessionstates.ironlb.dev"], "yes"],
        ["speaker", ["delete", "bgpsessionstates.ironlb.dev"], "yes"],
        ["controller", ["create", "bgpsessionstates.ironlb.dev"], "no"],
        ["speaker", ["list", "endpointslices.discovery.k8s.io", "--all-namespaces"], "yes"],
        ["speaker", ["update", "leases", "-n", "default"], "no"],
        // BGPPeers' passwordSecrets: read, in the release namespace only.
        ["speaker", ["get", "secrets", "-n", ns], "yes"],
        ["speaker", ["watch", "secrets", "-n", ns], "yes"],
        ["speaker", ["get", "secrets", "-n", "default"], "no"],
        ["speaker", ["list", "secrets", "--all-namespaces"], "no"],
        ["speaker", ["update", "secrets", "-n", ns], "no"],
        ["speaker", ["create", "secrets", "-n", ns], "no"],
        ["speaker", ["patch", "services", "--subresource=status", "-n", svcNs], "no"],
        ["speaker", ["delete", "services", "-n", svcNs], "no"],
        ["speaker", ["patch", "nodes"], "no"],
        ["speaker", ["patch", "ipaddresspools.ironlb.dev", "--subresource=status"], "no"],
        ["speaker", ["list", "pods", "--all-namespaces"], "no"],
        // At SIGTERM: its own DaemonSet, read only (restart or departure).
        ["speaker", ["get", `daemonsets.apps/${release}-ironlb-speaker`, "-n", ns], "yes"],
        ["speaker", ["get", "daemonsets.apps/other", "-n", ns], "no"],
        ["speaker", ["list", "daemonsets.apps", "-n", ns], "no"],
        ["speaker", ["patch", `daemonsets.apps/${release}-ironlb-speaker`, "-n", ns], "no"],
      ];
      const results = await Promise.all(cases.map(async ([sa, args]) => canI(sa, args)));
      expect(results.map((r, i) => `${cases[i]![0]} ${cases[i]![1].join(" ")}: ${r}`)).toEqual(
        cases.map(([sa, args, want]) => `${sa} ${args.join(" ")}: ${want}`),
      );
    });

    it("binds the speakers' IPAnnouncement and BGPSessionState writes to their own node", async () => {
      const sa = `${release}-ironlb-speaker`;
      const ANN = "/apis/ironlb.dev/v1beta1/ipannouncements";
      const SESSIONS = "/apis/ironlb.dev/v1beta1/bgpsessionstates";
      const outcome = async (p: Promise<unknown>) =>
        p.then(
          () => "ok",
          (err: unknown) =>
            `${httpStatus(err)}: ${(err as { body?: { message?: string } }).body?.message}`,
        );
      const denied = (resource: string, name: string, why: string) =>
        `403: ${resource}.ironlb.dev "${name}" is forbidden: ValidatingAdmissionPolicy '${sa}-records' with binding '${sa}-records' denied request: ${why}`;
      const nodeA = `rec-a-${process.pid}`;
      const nodeB = `rec-b-${process.pid}`;
      // Not in any pool of another file; these objects are records only, no Service uses them.
      const ip1 = "203.0.113.250";
      const ip2 = "203.0.113.251";
      const ann1 = "203-0-113-250";
      const ann2 = "203-0-113-251";
      const admin = KubeClient.load(adminKubeconfig);
      const pods: string[] = [];
      /** A client with the token of a speaker pod on `node` (it names the node). */
      const speakerOn = async (node: string) => {
        await core.createNode({ body: { metadata: { name: node } } });
        const pod = await core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: `speaker-${node}` },
            spec: {
              nodeName: node,
              serviceAccountName: sa,
              containers: [{ name: "speaker", image: "ironlb" }],
            },
          },
        });
        pods.push(pod.metadata!.name!);
        return KubeClient.load(
          await saKubeconfig(sa, { name: pod.metadata!.name!, uid: pod.metadata!.uid! }),
        );
      };
      /** Server-side apply of a node's BGP entry as its speaker does (bgp-records.ts). */
      const applyEntry = (c: KubeClient, manager: string, ip: string, bgp?: unknown[]) =>
        c.request("PATCH", `${ANN}/${ip.replace(/\./g, "-")}`, {
          body: {
            apiVersion: "ironlb.dev/v1beta1",
            kind: "IPAnnouncement",
            metadata: { name: ip.replace(/\./g, "-") },
            status: { ip, ...(bgp ? { bgp } : {}) },
          },
          contentType: "application/apply-patch+yaml",
          query: { fieldManager: `ironlb-bgp-${manager}`, force: true },
        });
      const l2 = (ip: string, node: string) => ({
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAnnouncement",
        metadata: { name: ip.replace(/\./g, "-") },
        status: { ip, node, interfaces: ["eth0"], services: ["shop/web"] },
      });
      const session = (node: string) => ({
        apiVersion: "ironlb.dev/v1beta1",
        kind: "BGPSessionState",
        metadata: { name: `${node}-tor` },
        status: { node, peer: "tor", state: "Established" },
      });
      try {
        const a = await speakerOn(nodeA);
        const b = await speakerOn(nodeB);
        // In force once the API server has loaded it: a dry run says when.
        await waitFor("the speaker record policy to be in force", async () =>
          (await outcome(
            b.request("POST", ANN, { body: l2(ip1, nodeA), query: { dryRun: "All" } }),
          )) !== "ok"
            ? true
            : undefined,
        ).catch(() => undefined);
        // Layer 2: a node records only itself as the owner.
        expect(await outcome(b.create(ANN, l2(ip1, nodeA)))).toBe(
          denied(
            "ipannouncements",
            ann1,
            `the speaker on node ${nodeB} may record only itself as the node announcing ${ann1}, not "${nodeA}"`,
          ),
        );
        expect(await outcome(a.create(ANN, l2(ip1, nodeA)))).toBe("ok");
        // Another node's record: not edited in its name...
        expect(
          await outcome(b.mergePatch(`${ANN}/${ann1}`, { status: { interfaces: ["evil0"] } })),
        ).toBe(
          denied(
            "ipannouncements",
            ann1,
            `the speaker on node ${nodeB} may record only itself as the node announcing ${ann1}, not "${nodeA}"`,
          ),
        );
        // ...nor deleted...
        expect(await outcome(b.delete(`${ANN}/${ann1}`))).toBe(
          denied(
            "ipannouncements",
            ann1,
            `the speaker on node ${nodeB} may delete ${ann1} only while it announces it, or when no other node does`,
          ),
        );
        // ...but taken over in its own name, as a failover does.
        expect(
          await outcome(
            b.mergePatch(`${ANN}/${ann1}`, { status: { node: nodeB, interfaces: ["eth1"] } }),
          ),
        ).toBe("ok");

        // BGP: each node writes its own entry; the API server merges them.
        expect(await outcome(applyEntry(a, nodeA, ip2, [{ node: nodeA, peers: ["tor"] }]))).toBe(
          "ok",
        );
        expect(await outcome(applyEntry(b, nodeB, ip2, [{ node: nodeB, peers: ["tor"] }]))).toBe(
          "ok",
        );
        const entries = async () =>
          (
            await admin.get<{ status?: { bgp?: { node: string; peers: string[] }[] } }>(
              `${ANN}/${ann2}`,
            )
          ).status?.bgp?.map((e) => `${e.node}:${e.peers.join(",")}`) ?? [];
        expect((await entries()).sort()).toEqual([`${nodeA}:tor`, `${nodeB}:tor`].sort());
        // Another node's entry: neither rewritten nor removed, nor the record deleted under it.
        const notOwnEntry = denied(
          "ipannouncements",
          ann2,
          `the speaker on node ${nodeB} may write only its own BGP entry of ${ann2} (status.bgp with node ${nodeB})`,
        );
        expect(
          await outcome(
            applyEntry(b, nodeB, ip2, [
              { node: nodeB, peers: ["tor"] },
              { node: nodeA, peers: ["evil"] },
            ]),
          ),
        ).toBe(notOwnEntry);
        expect(
          await outcome(
            b.mergePatch(`${ANN}/${ann2}`, { status: { bgp: [{ node: nodeB, peers: ["tor"] }] } }),
          ),
        ).toBe(notOwnEntry);
        expect(await outcome(b.delete(`${ANN}/${ann2}`))).toBe(
          denied(
            "ipannouncements",
            ann2,
            `the speaker on node ${nodeB} may delete ${ann2} only while it announces it, or when no other node does`,
          ),
        );
        expect((await entries()).sort()).toEqual([`${nodeA}:tor`, `${nodeB}:tor`].sort());
        // Its own entry: changed and removed; the last one deletes the record.
        expect(
          await outcome(applyEntry(b, nodeB, ip2, [{ node: nodeB, peers: ["tor", "edge"] }])),
        ).toBe("ok");
        expect(await outcome(applyEntry(a, nodeA, ip2))).toBe("ok");
        expect(await entries()).toEqual([`${nodeB}:tor,edge`]);
        expect(await outcome(applyEntry(b, nodeB, ip2))).toBe("ok");
        expect(await outcome(b.delete(`${ANN}/${ann2}`))).toBe("ok");

        // BGPSessionStates: its own node's only.
        const notOwnSession = (name: string) =>
          denied(
            "bgpsessionstates",
            name,
            `the speaker on node ${nodeB} may write only its own node's BGPSessionStates, not ${name}`,
          );
        expect(await outcome(b.create(SESSIONS, session(nodeA)))).toBe(
          notOwnSession(`${nodeA}-tor`),
        );
        expect(await outcome(a.create(SESSIONS, session(nodeA)))).toBe("ok");
        expect(await outcome(b.create(SESSIONS, session(nodeB)))).toBe("ok");
        expect(
          await outcome(b.mergePatch(`${SESSIONS}/${nodeA}-tor`, { status: { state: "Idle" } })),
        ).toBe(notOwnSession(`${nodeA}-tor`));
        expect(
          await outcome(b.mergePatch(`${SESSIONS}/${nodeA}-tor`, { status: { node: nodeB } })),
        ).toBe(notOwnSession(`${nodeA}-tor`));
        expect(await outcome(b.delete(`${SESSIONS}/${nodeA}-tor`))).toBe(
          notOwnSession(`${nodeA}-tor`),
        );
        expect(
          await outcome(a.mergePatch(`${SESSIONS}/${nodeA}-tor`, { status: { state: "Idle" } })),
        ).toBe("ok");
        expect(await outcome(a.delete(`${SESSIONS}/${nodeA}-tor`))).toBe("ok");
        expect(await outcome(b.delete(`${SESSIONS}/${nodeB}-tor`))).toBe("ok");
      } finally {
        for (const path of [
          `${ANN}/${ann1}`,
          `${ANN}/${ann2}`,
          `${SESSIONS}/${nodeA}-tor`,
          `${SESSIONS}/${nodeB}-tor`,
        ])
          await admin.delete(path).catch(() => {});
        for (const name of pods)
          await core
            .deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 })
            .catch(() => {});
        for (const name of [nodeA, nodeB]) await core.deleteNode({ name }).catch(() => {});
      }
    });

    it("keeps the heartbeat Secret across an upgrade", async () => {
      const name = `${release}-ironlb-heartbeat`;
      const before = (await core.readNamespacedSecret({ name, namespace: ns })).data?.secret;
      const dsBefore = await apps.readNamespacedDaemonSet({
        name: `${release}-ironlb-speaker`,
        namespace: ns,
      });
      await ok("helm", [
        "upgrade",
        release,
        chartDir,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "logLevel=debug",
        "--wait=false",
      ]);
      const after = (await core.readNamespacedSecret({ name, namespace: ns })).data?.secret;
      expect(after).toBe(before);
      const ds = await apps.readNamespacedDaemonSet({
        name: `${release}-ironlb-speaker`,
        namespace: ns,
      });
      expect(ds.spec?.template.spec?.containers[0]?.env).toContainEqual(
        expect.objectContaining({ name: "LOG_LEVEL", value: "debug" }),
      );
      // Nothing else in the pod template changed: no key-derived annotation rolls speakers.
      const envless = (d: V1DaemonSet) => {
        const t = structuredClone(d.spec!.template);
        t.spec!.containers[0]!.env = t.spec!.containers[0]!.env?.filter(
          (e) => e.name !== "LOG_LEVEL",
        );
        t.metadata!.labels = {};
        return t;
      };
      expect(envless(ds)).toEqual(envless(dsBefore));
    });

    it("metrics.auth kubernetes: /metrics answers only tokens allowed to read it, with the chart's RBAC", async () => {
      await ok("helm", [
        "upgrade",
        release,
        chartDir,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "metrics.auth=kubernetes",
        "--wait=false",
      ]);
      const ds = await apps.readNamespacedDaemonSet({
        name: `${release}-ironlb-speaker`,
        namespace: ns,
      });
      expect(ds.spec?.template.spec?.containers[0]?.args).toContain("--metrics-auth=kubernetes");
      for (const sa of ["controller", "speaker"]) {
        for (const what of [
          "tokenreviews.authentication.k8s.io",
          "subjectaccessreviews.authorization.k8s.io",
        ]) {
          const r = await run("kubectl", [
            "auth",
            "can-i",
            "create",
            what,
            `--as=system:serviceaccount:${ns}:${release}-ironlb-${sa}`,
          ]);
          expect(`${sa} create ${what}: ${r.stdout.trim()}`).toBe(`${sa} create ${what}: yes`);
        }
      }
      const ctrl = await chartController("helm-metrics");
      const port = await healthPortOf(ctrl);
      // A scraper bound to the chart's metrics-reader ClusterRole, and one that is not.
      for (const name of ["prometheus", "stranger"])
        await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
      await ok("kubectl", [
        "create",
        "clusterrolebinding",
        `${ns}-prometheus`,
        `--clusterrole=${release}-ironlb-metrics-reader`,
        `--serviceaccount=${ns}:prometheus`,
      ]);
      const token = async (name: string) =>
        (
          await core.createNamespacedServiceAccountToken({
            name,
            namespace: ns,
            body: { spec: { audiences: [], expirationSeconds: 600 } },
          })
        ).status?.token ?? "";
      const scrape = async (t?: string) =>
        (
          await fetch(`http://127.0.0.1:${port}/metrics`, {
            headers: t ? { authorization: `Bearer ${t}` } : {},
          })
        ).status;
      expect(await scrape(await token("prometheus"))).toBe(200);
      expect(await scrape(await token("stranger"))).toBe(403);
      expect(await scrape()).toBe(401);
      await ctrl.stop();
      expect(logText(ctrl)).not.toMatch(/forbidden/i);
      await ok("kubectl", ["delete", "clusterrolebinding", `${ns}-prometheus`]);
    });

    it("takes CRD updates the way the README says (Helm does not upgrade crds/)", async () => {
      // An older CRD in the cluster: one printer column fewer than the chart's.
      const name = "ipaddresspools.ironlb.dev";
      const columns = async () =>
        (await ext.readCustomResourceDefinition({ name })).spec.versions[0]!
          .additionalPrinterColumns ?? [];
      const want = await columns();
      expect(want.length).toBeGreaterThan(1);
      await ok("kubectl", [
        "patch",
        "crd",
        name,
        "--type=json",
        `-p=[{"op":"remove","path":"/spec/versions/0/additionalPrinterColumns/${want.length - 1}"}]`,
      ]);
      expect((await columns()).length).toBe(want.length - 1);
      const out = await ok("kubectl", [
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        join(chartDir, "crds"),
      ]);
      expect(out).toContain("ipaddresspools.ironlb.dev serverside-applied");
      expect(out).toContain("l2advertisements.ironlb.dev serverside-applied");
      expect(await columns()).toEqual(want);
      // Then the release upgrades as usual.
      await ok("helm", ["upgrade", release, chartDir, "-n", ns, "--reuse-values", "--wait=false"]);
    });

    it("uninstall removes the workloads and the pool, its hook the run-time objects; IPs and CRDs stay", async () => {
      const web = await getService(svcNs, "web");
      expect(web.status?.loadBalancer?.ingress?.length).toBe(1);
      expect(web.metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"]).toBe(pool);
      // No node runs the hook's Job here: uninstall without hooks, then do what the hook
      // does, with its own ServiceAccount, RBAC and arguments as the chart renders them.
      await ok("helm", ["uninstall", release, "-n", ns, "--no-hooks"]);
      const runHook = async (extra: string[]) => {
        const hook = parseManifests(
          await ok("helm", [
            "template",
            release,
            chartDir,
            "-n",
            ns,
            "-f",
            installValues,
            ...extra,
            "--show-only",
            "templates/cleanup-hook.yaml",
          ]),
        );
        const job = find<V1Job>(hook, "Job");
        const rbac = join(work, "hook-rbac.yaml");
        writeFileSync(
          rbac,
          hook
            .filter((o) => o.kind !== "Job")
            .map((o) => JSON.stringify(o))
            .join("\n---\n"),
        );
        await ok("kubectl", ["apply", "-f", rbac]);
        const cleanup = startComponent([
          ...(job.spec?.template.spec?.containers[0]?.args ?? []),
          "--kubeconfig",
          await saKubeconfig(`${release}-ironlb-cleanup`),
        ]);
        started.push(cleanup);
        const code = await waitFor(
          "cleanup to exit",
          () => cleanup.proc.exitCode ?? undefined,
          30_000,
        );
        expect(code, logText(cleanup)).toBe(0);
        expect(logText(cleanup)).not.toMatch(/forbidden/i);
        await ok("kubectl", ["delete", "-f", rbac]);
      };

      // Default values: the Service keeps what a reinstall restores its IP from.
      await runHook([]);
      const kept = await getService(svcNs, "web");
      expect(kept.status?.loadBalancer?.ingress).toEqual(web.status?.loadBalancer?.ingress);
      expect(kept.status?.conditions).toEqual(web.status?.conditions);
      expect(kept.metadata?.annotations).toEqual({
        "ironlb.dev/address-pool": pool,
        "ironlb.dev/ip-allocated-from-pool": pool,
      });
      // cleanup.keepAddresses=false: the hook's rights suffice to remove them too.
      await runHook(["--set", "cleanup.keepAddresses=false"]);
      const cleaned = await getService(svcNs, "web");
      expect(cleaned.status?.loadBalancer?.ingress ?? []).toEqual([]);
      expect(cleaned.metadata?.annotations).toEqual({ "ironlb.dev/address-pool": pool });
      await expect(
        leases.readNamespacedLease({ name: "ironlb-controller", namespace: ns }),
      ).rejects.toMatchObject({ code: 404 });

      const gone = async (read: () => Promise<unknown>) => {
        await expect(read()).rejects.toMatchObject({ code: 404 });
      };
      await gone(() =>
        apps.readNamespacedDeployment({ name: `${release}-ironlb-controller`, namespace: ns }),
      );
      await gone(() =>
        apps.readNamespacedDaemonSet({ name: `${release}-ironlb-speaker`, namespace: ns }),
      );
      await gone(() =>
        core.readNamespacedSecret({ name: `${release}-ironlb-heartbeat`, namespace: ns }),
      );
      await gone(() =>
        core.readNamespacedServiceAccount({ name: `${release}-ironlb-speaker`, namespace: ns }),
      );
      await gone(() => getPool(pool));
      // Helm never deletes what it installed from crds/: pools of other releases survive.
      await ext.readCustomResourceDefinition({ name: "ipaddresspools.ironlb.dev" });
      await custom.listClusterCustomObject({
        group: "ironlb.dev",
        version: "v1beta1",
        plural: "ipaddresspools",
      });
    });
  });
  describe("CRDs as templates (crds.templated)", () => {
    const crdFiles = () =>
      readdirSync(join(repoRoot, "config/crd"))
        .filter((f) => f.endsWith(".yaml"))
        .sort()
        .flatMap((f) => parseManifests(readFileSync(join(repoRoot, "config/crd", f), "utf8")));
    /** A CRD as plain JSON without what the template adds (Helm's labels, the keep policy). */
    const bare = (o: KubernetesObject) => {
      const c = JSON.parse(JSON.stringify(o)) as KubernetesObject;
      const m = c.metadata!;
      for (const k of ["app.kubernetes.io/managed-by", "helm.sh/chart"]) delete m.labels?.[k];
      delete m.annotations?.["helm.sh/resource-policy"];
      if (m.annotations && Object.keys(m.annotations).length === 0) delete m.annotations;
      return c;
    };

    it("renders exactly the crds/ files, each kept on uninstall", async () => {
      const objs = parseManifests(
        await ok("helm", [
          "template",
          "lb",
          chartDir,
          "--set",
          "crds.templated=true",
          "--show-only",
          "templates/crds.yaml",
        ]),
      );
      expect(objs.map(bare)).toEqual(crdFiles().map(bare));
      for (const o of objs)
        expect(o.metadata?.annotations?.["helm.sh/resource-policy"]).toBe("keep");
      // Off by default: crds/ only.
      const plain = await ok("helm", ["template", "lb", chartDir]);
      expect(plain).not.toContain("kind: CustomResourceDefinition");
      const withPools = await run("helm", [
        "template",
        "lb",
        chartDir,
        "--set",
        "crds.templated=true,pools[0].name=a,pools[0].spec.addresses[0]=198.51.100.0/28",
      ]);
      expect(withPools.stderr).toContain(
        "cannot create pools, advertisements or BGP peers in the same install",
      );
    });

    it("adopts existing CRDs, upgrades them with the release and keeps them on uninstall", async () => {
      const { ext } = clients();
      const ns = await createNamespace("helm-crds");
      const release = "crds";
      const names = crdFiles().map((o) => o.metadata!.name!);
      // The CRDs exist already (an earlier install's crds/): adopt them as the README says.
      for (const name of names) {
        await ok("kubectl", [
          "label",
          "crd",
          name,
          "app.kubernetes.io/managed-by=Helm",
          "--overwrite",
        ]);
        await ok("kubectl", [
          "annotate",
          "crd",
          name,
          `meta.helm.sh/release-name=${release}`,
          `meta.helm.sh/release-namespace=${ns}`,
          "--overwrite",
        ]);
      }
      const common = [
        "-n",
        ns,
        "--set",
        "crds.templated=true,cleanup.enabled=false",
        "--wait=false",
      ];
      await ok("helm", ["install", release, chartDir, "--skip-crds", ...common]);
      const pools = "ipaddresspools.ironlb.dev";
      const columns = async () =>
        (await ext.readCustomResourceDefinition({ name: pools })).spec.versions[0]!
          .additionalPrinterColumns ?? [];
      const before = await columns();

      // A new chart version whose CRD has one more column: `helm upgrade` applies it.
      // crds/ holds links into config/crd: the copy gets real files, never written through.
      const next = join(work, "chart-next");
      cpSync(chartDir, next, { recursive: true, filter: (src) => !src.includes("/crds/") });
      mkdirSync(join(next, "crds"), { recursive: true });
      for (const f of readdirSync(join(chartDir, "crds")))
        writeFileSync(join(next, "crds", f), readFileSync(join(chartDir, "crds", f)));
      const file = join(next, "crds/ironlb.dev_ipaddresspools.yaml");
      expect(lstatSync(file).isSymbolicLink()).toBe(false);
      // Plain YAML parsing keeps the wire names (x-kubernetes-*, default), not client-node's.
      const crd = loadPlainYaml(readFileSync(file, "utf8")) as {
        spec: { versions: { additionalPrinterColumns: object[] }[] };
      };
      crd.spec.versions[0]!.additionalPrinterColumns.push({
        name: "Upgraded",
        type: "string",
        jsonPath: ".metadata.name",
        priority: 1,
      });
      writeFileSync(file, JSON.stringify(crd));
      await ok("helm", ["upgrade", release, next, ...common]);
      expect((await columns()).map((c) => c.name)).toEqual([
        ...before.map((c) => c.name),
        "Upgraded",
      ]);
      // And back with this chart.
      await ok("helm", ["upgrade", release, chartDir, ...common]);
      expect(await columns()).toEqual(before);

      await ok("helm", ["uninstall", release, "-n", ns, "--no-hooks"]);
      for (const name of names) {
        const kept = await ext.readCustomResourceDefinition({ name });
        expect(kept.metadata?.deletionTimestamp).toBeUndefined();
      }
    });
  });
});
