import { describe, expect, it } from "vitest";
import { convertMetalLB, formatConversion, parseDocuments } from "./migrate-metallb.ts";

// Inputs shaped like the examples of MetalLB's configuration documentation (its field
// names and forms), with documentation addresses and private AS numbers.
const pool = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
  namespace: metallb-system
  labels: { zone: east }
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    owner: netops
spec:
  addresses:
  - 198.51.100.0/26
  - 198.51.100.100-198.51.100.120
  - 2001:db8:100::/124
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [shop]
    serviceSelectors:
    - matchExpressions: [{ key: tier, operator: In, values: [edge] }]
`;

const l2 = `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: example
  namespace: metallb-system
spec:
  ipAddressPools: [first-pool]
  nodeSelectors:
  - matchLabels: { kubernetes.io/hostname: node1 }
  interfaces: [eth0]
`;

const bgp = `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: router, namespace: metallb-system }
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 192.0.2.1
  holdTime: 90s
  password: secret
  bfdProfile: fast
  ebgpMultiHop: true
  enableGracefulRestart: true
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: { name: fast, namespace: metallb-system }
spec: { receiveInterval: 300, transmitInterval: 300, echoMode: true }
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: { name: communities, namespace: metallb-system }
spec:
  communities:
  - { name: NO_ADVERTISE, value: "65535:65282" }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: external, namespace: metallb-system }
spec:
  ipAddressPools: [first-pool]
  aggregationLength: 32
  localPref: 100
  communities: [NO_ADVERTISE, "64500:10", "large:64500:1:2"]
  peers: [router]
  serviceSelectors: [{ matchLabels: { exposure: bgp } }]
`;

/** A Service of another implementation: Services in the input tell which IPs are shared. */
const other = {
  metadata: { name: "dns", namespace: "kube-system" },
  spec: { type: "ClusterIP" },
};
const convert = (text: string, services: object[] = [other]) =>
  convertMetalLB(parseDocuments(text), services as never);
/** The spec of the first converted object. */
const firstSpec = (c: ReturnType<typeof convertMetalLB>) =>
  c.objects[0]!.object.spec as { addresses: string[]; serviceAllocation: object };

describe("parseDocuments", () => {
  it("reads several documents and flattens List kinds, skipping empty documents", () => {
    const list = `apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: { name: a, namespace: metallb-system }
  spec: { addresses: [198.51.100.0/28] }
- apiVersion: metallb.io/v1beta1
  kind: L2Advertisement
  metadata: { name: b, namespace: metallb-system }
---
---
${l2}`;
    expect(parseDocuments(list).map((o) => (o as { kind: string }).kind)).toEqual([
      "IPAddressPool",
      "L2Advertisement",
      "L2Advertisement",
    ]);
  });

  it("reads JSON (kubectl get -o json)", () => {
    const json = JSON.stringify({
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPoolList",
      items: [{ apiVersion: "metallb.io/v1beta1", kind: "IPAddressPool", metadata: { name: "a" } }],
    });
    expect(parseDocuments(json)).toHaveLength(1);
  });
});

describe("convertMetalLB", () => {
  it("converts a pool field by field, cluster-scoped, keeping labels and annotations", () => {
    const c = convert(pool);
    expect(c.errors).toEqual([]);
    expect(c.warnings).toEqual([]);
    expect(c.namespaces).toEqual(["metallb-system"]);
    expect(c.objects).toEqual([
      {
        comments: ["from metallb.io/v1beta1 IPAddressPool metallb-system/first-pool"],
        object: {
          apiVersion: "ironlb.dev/v1beta1",
          kind: "IPAddressPool",
          metadata: {
            name: "first-pool",
            labels: { zone: "east" },
            annotations: { owner: "netops" },
          },
          spec: {
            addresses: ["198.51.100.0/26", "198.51.100.100-198.51.100.120", "2001:db8:100::/124"],
            autoAssign: false,
            avoidBuggyIPs: true,
            serviceAllocation: {
              priority: 50,
              namespaces: ["shop"],
              serviceSelectors: [
                { matchExpressions: [{ key: "tier", operator: "In", values: ["edge"] }] },
              ],
            },
          },
        },
      },
    ]);
  });

  it("converts an L2Advertisement as it is", () => {
    const c = convert(l2);
    expect(c.errors).toEqual([]);
    expect(c.objects[0]?.object).toEqual({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: "example" },
      spec: {
        ipAddressPools: ["first-pool"],
        nodeSelectors: [{ matchLabels: { "kubernetes.io/hostname": "node1" } }],
        interfaces: ["eth0"],
      },
    });
  });

  it("converts BGP peers and advertisements, inlines communities, and names what it drops", () => {
    const c = convert(bgp);
    expect(c.errors).toEqual([]);
    expect(c.objects.map((o) => o.object)).toEqual([
      // The plain password becomes a Secret in ironlb's namespace, which the peer names.
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "router-bgp-password", namespace: "ironlb-system" },
        type: "kubernetes.io/basic-auth",
        stringData: { password: "secret" },
      },
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "BGPPeer",
        metadata: { name: "router" },
        spec: {
          myASN: 64500,
          peerASN: 64501,
          peerAddress: "192.0.2.1",
          holdTime: "90s",
          bfdProfile: "fast",
          ebgpMultiHop: true,
          passwordSecret: { name: "router-bgp-password" },
          enableGracefulRestart: true,
        },
      },
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "BFDProfile",
        metadata: { name: "fast" },
        spec: { receiveInterval: 300, transmitInterval: 300 },
      },
      {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "BGPAdvertisement",
        metadata: { name: "external" },
        spec: {
          ipAddressPools: ["first-pool"],
          aggregationLength: 32,
          localPref: 100,
          communities: ["65535:65282", "64500:10", "large:64500:1:2"],
          peers: ["router"],
          serviceSelectors: [{ matchLabels: { exposure: "bgp" } }],
        },
      },
    ]);
    expect(c.objects[3]?.comments).toContain(
      "community NO_ADVERTISE = 65535:65282 (from MetalLB's Community objects)",
    );
    expect(c.warnings).toEqual([
      "BGPPeer metallb-system/router: spec.password becomes Secret ironlb-system/router-bgp-password (type kubernetes.io/basic-auth, key password), printed with the objects: ironlb keeps passwords in Secrets, never in the cluster-scoped BGPPeer; the output holds the password in clear text, keep it private",
      "BFDProfile metallb-system/fast: spec.echoMode is not converted: ironlb's BFD runs without echo (asynchronous mode only); the profile's other timers apply",
    ]);
  });

  it("points a passwordSecret at ironlb's namespace and says how to copy MetalLB's Secret there", () => {
    const peer = bgp.replace("  password: secret\n", "  passwordSecret: { name: bgp-auth }\n");
    const c = convert(peer);
    expect(c.errors).toEqual([]);
    expect(c.objects.map((o) => o.object.kind)).not.toContain("Secret");
    expect(c.objects[0]?.object.spec).toMatchObject({ passwordSecret: { name: "bgp-auth" } });
    expect(c.warnings[0]).toBe(
      `BGPPeer metallb-system/router: spec.passwordSecret names Secret metallb-system/bgp-auth, but ironlb reads it in its own namespace ironlb-system: copy it there before applying (kubectl -n ironlb-system create secret generic bgp-auth --type=kubernetes.io/basic-auth --from-literal=password="$(kubectl -n metallb-system get secret bgp-auth -o jsonpath='{.data.password}' | base64 -d)")`,
    );
    // Where ironlb already shares MetalLB's namespace, nothing to copy.
    const same = convertMetalLB(parseDocuments(peer), [], { ironlbNamespace: "metallb-system" });
    expect(same.warnings.filter((w) => w.includes("passwordSecret"))).toEqual([]);
    // A plain password goes to the namespace given.
    const other = convertMetalLB(parseDocuments(bgp), [], { ironlbNamespace: "lb" });
    expect(other.objects[0]?.object.metadata).toEqual({
      name: "router-bgp-password",
      namespace: "lb",
    });
    expect(formatConversion(other)).toContain("kind: Secret");
  });

  it("refuses a community alias nothing defines", () => {
    const c = convert(bgp.replace("[NO_ADVERTISE,", "[NO_SUCH,"));
    expect(c.errors).toEqual([
      'BGPAdvertisement metallb-system/external: spec.communities names "NO_SUCH", which no Community object in the input defines',
    ]);
  });

  it("refuses two objects of one kind and name in different namespaces", () => {
    const c = convert(
      `${pool}---\n${pool.replace("namespace: metallb-system", "namespace: other")}`,
    );
    expect(c.errors).toEqual([
      "IPAddressPool first-pool exists in namespaces metallb-system and other: ironlb's IPAddressPools are cluster-scoped, one per name; rename one of them (MetalLB uses only those of its own namespace: convert that namespace alone with --namespace)",
    ]);
    // The same name in another kind is fine.
    expect(
      convert(`${pool}---\n${l2.replace("name: example", "name: first-pool")}`).errors,
    ).toEqual([]);
  });

  it("writes a CIDR with host bits set as MetalLB reads it, and says so", () => {
    const c = convert(pool.replace("198.51.100.0/26", "198.51.100.5/26"));
    expect(firstSpec(c).addresses[0]).toBe("198.51.100.0/26");
    expect(c.warnings).toEqual([
      "IPAddressPool metallb-system/first-pool: spec.addresses entry 198.51.100.5/26 has host bits set; MetalLB reads it as 198.51.100.0/26, which is written instead",
    ]);
  });

  it("refuses a pool ironlb would reject, with the apiserver's words", () => {
    const c = convert(
      pool.replace("198.51.100.100-198.51.100.120", "198.51.100.120-198.51.100.100"),
    );
    expect(c.errors).toHaveLength(1);
    expect(c.errors[0]).toMatch(
      /^IPAddressPool metallb-system\/first-pool: the converted object is not valid for ironlb: .*range start must not be after its end/,
    );
  });

  it("says that Services are needed to keep IPs shared across namespaces", () => {
    expect(convert(pool, []).warnings).toEqual([
      "no Services in the input: pools whose IPs Services of different namespaces share cannot be found, and those Services would lose their IPs (such pools need allowSharingAcrossNamespaces: true); add them (kubectl get services -A -o yaml) or read from the cluster",
    ]);
    expect(convert(l2, []).warnings).toEqual([]);
  });

  it("names fields ironlb does not have, and namespaceSelectors' different meaning", () => {
    const c = convert(
      pool
        .replace("  avoidBuggyIPs: true", "  avoidBuggyIPs: true\n  someNewField: 1")
        .replace(
          "    namespaces: [shop]",
          "    namespaceSelectors: [{ matchLabels: { team: web } }]",
        ),
    );
    expect(c.warnings).toEqual([
      "IPAddressPool metallb-system/first-pool: spec.someNewField is not converted: ironlb's IPAddressPool has no such field",
      "IPAddressPool metallb-system/first-pool: spec.serviceAllocation.namespaceSelectors: when they match no namespace, MetalLB lets every namespace use the pool, ironlb none",
    ]);
  });

  it("allows sharing across namespaces on pools whose Services do so", () => {
    const svc = (ns: string, ip: string) => ({
      metadata: { name: "s", namespace: ns },
      spec: { type: "LoadBalancer" },
      status: { loadBalancer: { ingress: [{ ip }] } },
    });
    const c = convert(pool, [
      svc("a", "198.51.100.7"),
      svc("b", "198.51.100.7"),
      svc("a", "198.51.100.8"),
      svc("a", "198.51.100.9"),
    ]);
    const spec = c.objects[0]?.object.spec as { serviceAllocation: Record<string, unknown> };
    expect(spec.serviceAllocation.allowSharingAcrossNamespaces).toBe(true);
    expect(c.objects[0]?.comments[1]).toContain(
      "Services of different namespaces share 198.51.100.7",
    );
    // Services in the input count too; sharing within one namespace does not.
    const same = `${pool}---
apiVersion: v1
kind: Service
metadata: { name: x, namespace: a }
spec: { type: LoadBalancer }
status: { loadBalancer: { ingress: [{ ip: 198.51.100.7 }] } }
---
apiVersion: v1
kind: Service
metadata: { name: y, namespace: a }
spec: { type: LoadBalancer }
status: { loadBalancer: { ingress: [{ ip: 198.51.100.7 }] } }
`;
    const d = convert(same, []);
    expect(d.warnings).toEqual([]);
    expect(firstSpec(d).serviceAllocation).not.toHaveProperty("allowSharingAcrossNamespaces");
    const across = convert(same.replace("name: y, namespace: a", "name: y, namespace: b"), []);
    expect(firstSpec(across).serviceAllocation).toHaveProperty(
      "allowSharingAcrossNamespaces",
      true,
    );
  });

  it("skips what is not MetalLB's, with a warning", () => {
    const c = convert(`apiVersion: v1
kind: ConfigMap
metadata: { name: other, namespace: metallb-system }
data: { foo: bar }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: controller, namespace: metallb-system }
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: { name: l2-x, namespace: metallb-system }
`);
    expect(c.objects).toEqual([]);
    expect(c.warnings).toEqual([
      "ConfigMap metallb-system/other (v1): not a MetalLB object, skipped",
      "Deployment metallb-system/controller (apps/v1): not a MetalLB object, skipped",
      "ServiceL2Status metallb-system/l2-x (metallb.io/v1beta1): ironlb has no equivalent, skipped",
    ]);
  });
});

// MetalLB's configuration before v0.13: one ConfigMap, kebab-case keys.
const legacy = `apiVersion: v1
kind: ConfigMap
metadata: { name: config, namespace: metallb-system }
data:
  config: |
    peers:
    - peer-address: 192.0.2.1
      peer-asn: 64501
      my-asn: 64500
      hold-time: 120s
      password: secret
      node-selectors:
      - match-labels: { rack: frontend }
        match-expressions:
        - { key: network-speed, operator: NotIn, values: [slow] }
    bgp-communities:
      bestpath: "64500:100"
    address-pools:
    - name: lan
      protocol: layer2
      addresses: [198.51.100.0/27]
      auto-assign: false
    - name: routed
      protocol: bgp
      addresses: [203.0.113.0/28]
      avoid-buggy-ips: true
      bgp-advertisements:
      - aggregation-length: 32
        localpref: 100
        communities: [bestpath, "64500:1"]
      - aggregation-length: 24
    - name: plain
      protocol: bgp
      addresses: [192.0.2.128/28]
    bfd-profiles:
    - name: fast
`;

describe("the legacy ConfigMap", () => {
  const spec = (kind: string, name: string, c: ReturnType<typeof convertMetalLB>) =>
    c.objects.find(
      (o) => o.object.kind === kind && (o.object.metadata as { name: string }).name === name,
    )?.object.spec;

  it("converts pools, their advertisements and peers as MetalLB reads them", () => {
    const c = convert(legacy);
    expect(c.errors).toEqual([]);
    expect(
      c.objects.map((o) => `${o.object.kind}/${(o.object.metadata as { name: string }).name}`),
    ).toEqual([
      "BFDProfile/fast",
      "Secret/peer-192-0-2-1-bgp-password",
      "BGPPeer/peer-192-0-2-1",
      "IPAddressPool/lan",
      "L2Advertisement/lan",
      "IPAddressPool/routed",
      "BGPAdvertisement/routed-0",
      "BGPAdvertisement/routed-1",
      "IPAddressPool/plain",
      "BGPAdvertisement/plain",
    ]);
    expect(spec("BGPPeer", "peer-192-0-2-1", c)).toEqual({
      peerAddress: "192.0.2.1",
      peerASN: 64501,
      myASN: 64500,
      holdTime: "120s",
      passwordSecret: { name: "peer-192-0-2-1-bgp-password" },
      nodeSelectors: [
        {
          matchLabels: { rack: "frontend" },
          matchExpressions: [{ key: "network-speed", operator: "NotIn", values: ["slow"] }],
        },
      ],
    });
    expect(spec("IPAddressPool", "lan", c)).toEqual({
      addresses: ["198.51.100.0/27"],
      autoAssign: false,
    });
    expect(spec("L2Advertisement", "lan", c)).toEqual({ ipAddressPools: ["lan"] });
    expect(spec("IPAddressPool", "routed", c)).toEqual({
      addresses: ["203.0.113.0/28"],
      avoidBuggyIPs: true,
    });
    expect(spec("BGPAdvertisement", "routed-0", c)).toEqual({
      aggregationLength: 32,
      localPref: 100,
      communities: ["64500:100", "64500:1"],
      ipAddressPools: ["routed"],
    });
    expect(spec("BGPAdvertisement", "routed-1", c)).toEqual({
      aggregationLength: 24,
      ipAddressPools: ["routed"],
    });
    expect(spec("BGPAdvertisement", "plain", c)).toEqual({ ipAddressPools: ["plain"] });
    expect(c.objects[3]?.comments).toEqual([
      "from ConfigMap metallb-system/config address-pools[0]",
    ]);
    expect(spec("BFDProfile", "fast", c)).toEqual({});
    expect(c.warnings).toEqual([
      "BGPPeer metallb-system/peer-192-0-2-1: spec.password becomes Secret ironlb-system/peer-192-0-2-1-bgp-password (type kubernetes.io/basic-auth, key password), printed with the objects: ironlb keeps passwords in Secrets, never in the cluster-scoped BGPPeer; the output holds the password in clear text, keep it private",
    ]);
  });

  it("names what it does not know, and refuses a config that is not YAML", () => {
    const c = convert(
      legacy
        .replace("    peers:\n", "    unknown-section: 1\n    peers:\n")
        .replace("protocol: layer2", "protocol: carrier-pigeon"),
    );
    expect(c.warnings).toContain(
      "ConfigMap metallb-system/config: unknown-section is not converted: ironlb has no equivalent",
    );
    expect(c.warnings).toContain(
      "ConfigMap metallb-system/config: address-pools[0] (lan) has protocol carrier-pigeon: only layer2 and bgp are converted; the pool is converted without advertisement",
    );
    const bad = convert(legacy.replace("    peers:\n", "    peers: [\n"));
    expect(bad.errors).toHaveLength(1);
    expect(bad.errors[0]).toMatch(/^ConfigMap metallb-system\/config: its config is not YAML: /);
  });
});

describe("formatConversion", () => {
  it("prints YAML that reads back as the converted objects, without namespaces", () => {
    const c = convert(`${pool}---\n${l2}`);
    const text = formatConversion(c);
    expect(text).toMatch(/^# ironlb objects converted from MetalLB's/);
    expect(text).toContain("the namespace of MetalLB's (metallb-system) is dropped");
    expect(text).toContain(
      "---\n# from metallb.io/v1beta1 L2Advertisement metallb-system/example\n",
    );
    expect(text).not.toContain("namespace:");
    expect(parseDocuments(text)).toEqual(c.objects.map((o) => o.object));
  });
});
