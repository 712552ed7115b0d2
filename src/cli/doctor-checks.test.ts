import { describe, expect, it } from "vitest";
import { type DoctorInput, diagnose } from "./doctor-checks.ts";
import { exitCode, type Finding, formatFindings } from "./doctor-findings.ts";

const NOW = Date.parse("2026-12-01T12:00:00Z");
const opts = { lbClass: "ironlb.dev/lb", handleUnclassed: true };
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

function svc(name: string, ip?: string, extra: { spec?: object; metadata?: object } = {}) {
  return {
    metadata: {
      name,
      namespace: "shop",
      annotations: { "ironlb.dev/ip-allocated-from-pool": "public" },
      ...extra.metadata,
    },
    spec: { type: "LoadBalancer", externalTrafficPolicy: "Cluster", ...extra.spec },
    status: ip
      ? {
          loadBalancer: { ingress: [{ ip, ipMode: "VIP" }] },
          conditions: [{ type: "ironlb.dev/IPAllocated", status: "True", reason: "Allocated" }],
        }
      : {},
  };
}

function slice(service: string, node: string, ready = true) {
  return {
    metadata: {
      name: `${service}-${node}`,
      namespace: "shop",
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: "IPv4",
    endpoints: [{ addresses: ["10.0.0.1"], nodeName: node, conditions: { ready } }],
  };
}

const lease = (node: string, renewedSecondsAgo: number) => ({
  metadata: { name: `ironlb-speaker-${node}`, namespace: "ironlb-system" },
  spec: { holderIdentity: node, renewTime: ago(renewedSecondsAgo), leaseDurationSeconds: 6 },
});

const record = (ip: string, node: string) => ({
  metadata: { name: ip.replaceAll(".", "-") },
  status: { ip, node, interfaces: ["eth0"] },
});

/** A healthy cluster: two nodes with speakers, one pool, one advertisement, one Service. */
function healthy(): DoctorInput {
  return {
    services: [svc("web", "198.51.100.7")] as never,
    slices: [slice("web", "node1")] as never,
    nodes: ["node1", "node2"].map((name) => ({
      metadata: { name, labels: {} },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    })) as never,
    pools: [
      {
        metadata: { name: "public" },
        spec: { addresses: ["198.51.100.0/24"] },
        status: { conditions: [{ type: "Ready", status: "True", reason: "PoolReady" }] },
      },
    ] as never,
    ads: [{ metadata: { name: "lan" }, spec: {} }] as never,
    leases: [lease("node1", 1), lease("node2", 2)] as never,
    announcements: [record("198.51.100.7", "node2")] as never,
    events: [],
    controllerLeases: [
      {
        metadata: { name: "ironlb-controller", namespace: "ironlb-system" },
        spec: { holderIdentity: "ctrl-0", renewTime: ago(1), leaseDurationSeconds: 15 },
      },
    ] as never,
    kubeProxy: { found: true, text: "mode: iptables\n" },
  };
}

const not = (severity: Finding["severity"]) => (fs: Finding[]) =>
  fs.filter((f) => f.severity !== severity);

interface Case {
  name: string;
  change: (i: DoctorInput) => void;
  service?: string;
  /** Findings expected (matched partially); cause and fix matched as substrings. */
  expect: Array<
    Partial<Omit<Finding, "cause" | "fix" | "evidence">> & {
      cause?: string;
      fix?: string;
      evidence?: string;
    }
  >;
}

const drain = (i: DoctorInput, node: string, value: string) => {
  const n = i.nodes.find((x) => x.metadata?.name === node)!;
  n.metadata!.annotations = { "ironlb.dev/drain": value };
};

const cases: Case[] = [
  {
    name: "a drained node whose IPs another node may take: said, no problem",
    change: (i) => drain(i, "node2", "true"),
    expect: [
      {
        severity: "ok",
        check: "drained",
        subject: "node node2",
        cause: "drained (ironlb.dev/drain=true)",
      },
    ],
  },
  {
    name: "a drained node that keeps an IP no other node may announce (Local, endpoint there only)",
    change: (i) => {
      i.services = [
        svc("web", "198.51.100.7", { spec: { externalTrafficPolicy: "Local" } }),
      ] as never;
      i.slices = [slice("web", "node2")] as never;
      drain(i, "node2", "true");
    },
    expect: [
      {
        severity: "problem",
        check: "drained",
        subject: "node node2",
        cause: "drained, but still announces 1 IP(s) no other node may announce: 198.51.100.7",
        fix: "ironlb drain --force node2",
        evidence: "no other node may announce 198.51.100.7",
      },
    ],
  },
  {
    name: "a pool no L2Advertisement selects",
    change: (i) => {
      i.ads = [{ metadata: { name: "other" }, spec: { ipAddressPools: ["private"] } }] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "pool-advertised",
        subject: "pool public",
        cause: "no L2Advertisement or BGPAdvertisement selects pool public",
        fix: "ipAddressPools: [public]",
        evidence: "advertisements: L2Advertisement other",
      },
      {
        severity: "problem",
        check: "announced",
        subject: "service shop/web 198.51.100.7",
        cause: 'no L2Advertisement selects pool "public"',
        fix: "create an L2Advertisement that selects pool public",
      },
    ],
  },
  {
    name: "a pool only a BGPAdvertisement selects is advertised (BGP mode)",
    change: (i) => {
      i.ads = [];
      i.bgpAds = [{ metadata: { name: "tor" }, spec: { ipAddressPools: ["public"] } }] as never;
    },
    expect: [
      {
        severity: "ok",
        check: "pool-advertised",
        subject: "pool public",
        cause: "advertised by BGPAdvertisement tor",
      },
      {
        severity: "ok",
        check: "announced",
        subject: "service shop/web 198.51.100.7",
        cause: "advertised over BGP (BGPAdvertisement tor)",
      },
    ],
  },
  {
    name: "an unused pool without advertisement is only a warning",
    change: (i) => {
      i.services = [];
      i.ads = [];
    },
    expect: [
      { severity: "warning", check: "pool-advertised", evidence: "no advertisement exists" },
    ],
  },
  {
    name: "advertisements whose nodeSelectors match no node",
    change: (i) => {
      i.ads = [
        {
          metadata: { name: "lan" },
          spec: { nodeSelectors: [{ matchLabels: { rack: "r9" } }] },
        },
      ] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "pool-advertised",
        cause: "(L2Advertisement lan) match no node",
      },
      { severity: "problem", check: "announced", cause: "not selected by the nodeSelectors" },
    ],
  },
  {
    name: "a frozen pool",
    change: (i) => {
      (i.pools[0] as { status: object }).status = {
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "InvalidSpec",
            message: "the pool is frozen: Services keep the IPs it gave them",
          },
        ],
      };
    },
    expect: [
      {
        severity: "problem",
        check: "pool-ready",
        cause: "pool public is not Ready: InvalidSpec: the pool is frozen",
        fix: "PoolFrozen",
      },
    ],
  },
  {
    name: "overlapping pools",
    change: (i) => {
      (i.pools[0] as { status: { conditions: object[] } }).status.conditions.push({
        type: "Conflict",
        status: "True",
        reason: "OverlapsPool",
        message: "198.51.100.0/25 is in older pool old",
      });
    },
    expect: [{ severity: "warning", check: "pool-overlap", cause: "older pool old" }],
  },
  {
    name: "a pool no controller handled",
    change: (i) => {
      delete (i.pools[0] as { status?: object }).status;
    },
    expect: [{ severity: "warning", check: "pool-ready", cause: "no Ready condition" }],
  },
  {
    name: "a Service without IP, with the controller's reason",
    change: (i) => {
      const s = svc("batch");
      (s.status as object) = {
        conditions: [
          {
            type: "ironlb.dev/IPAllocated",
            status: "False",
            reason: "PoolExhausted",
            message: "no free address for shop/batch",
          },
        ],
      };
      i.services.push(s as never);
    },
    expect: [
      {
        severity: "problem",
        check: "service-ip",
        subject: "service shop/batch",
        cause: "no IP: PoolExhausted: no free address",
        fix: "add addresses",
      },
    ],
  },
  {
    name: "a Service without IP that no controller handled",
    change: (i) => {
      i.services.push(svc("new") as never);
      i.controllerLeases = [];
    },
    expect: [
      {
        severity: "problem",
        check: "service-ip",
        subject: "service shop/new",
        cause: "no ironlb controller has said why",
        evidence: "no ironlb-controller Lease",
      },
    ],
  },
  {
    name: "a Service that keeps its IP while its request cannot be met",
    change: (i) => {
      (i.services[0] as { status: { conditions: object[] } }).status.conditions = [
        {
          type: "ironlb.dev/IPAllocated",
          status: "True",
          reason: "PoolNotFound",
          message: "keeps 198.51.100.7 from pool public: pool gone does not exist",
        },
      ];
    },
    expect: [
      {
        severity: "warning",
        check: "service-ip",
        cause: "keeps 198.51.100.7, but its request cannot be met: PoolNotFound",
        fix: "ironlb.dev/address-pool",
      },
    ],
  },
  {
    name: "Local without ready endpoints",
    change: (i) => {
      i.services = [
        svc("web", "198.51.100.7", { spec: { externalTrafficPolicy: "Local" } }),
      ] as never;
      i.slices = [slice("web", "node1", false)] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "announced",
        cause: "not announced: no ready endpoints",
        fix: "kubernetes.io/service-name=web",
      },
    ],
  },
  {
    name: "Local with endpoints only on a tainted node without speaker",
    change: (i) => {
      i.services = [
        svc("web", "198.51.100.7", { spec: { externalTrafficPolicy: "Local" } }),
      ] as never;
      i.nodes.push({
        metadata: { name: "node3", labels: {} },
        spec: {
          taints: [
            { key: "dedicated", value: "db", effect: "NoSchedule" },
            { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" },
            { key: "soft", effect: "PreferNoSchedule" },
          ],
        },
        status: { conditions: [{ type: "Ready", status: "True" }] },
      } as never);
      i.slices = [slice("web", "node3")] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "announced",
        cause: "no node with a ready endpoint has a live speaker",
        fix: "speaker.tolerations",
      },
      {
        severity: "warning",
        check: "speaker-on-node",
        subject: "node node3",
        cause: "no speaker Lease",
        // Only taints the speaker does not tolerate anyway count.
        evidence: "taints: dedicated=db:NoSchedule",
        fix: "speaker.tolerations",
      },
    ],
  },
  {
    name: "Local with endpoints only on nodes no advertisement selects",
    change: (i) => {
      i.services = [
        svc("web", "198.51.100.7", { spec: { externalTrafficPolicy: "Local" } }),
      ] as never;
      (i.nodes[0] as { metadata: { labels: object } }).metadata.labels = { lan: "yes" };
      i.ads = [
        { metadata: { name: "lan" }, spec: { nodeSelectors: [{ matchLabels: { lan: "yes" } }] } },
      ] as never;
      i.slices = [slice("web", "node2")] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "announced",
        cause: 'node2 not selected by the nodeSelectors of L2Advertisement "lan"',
        fix: "nodeSelectors",
      },
    ],
  },
  {
    name: "no speaker Lease fresh",
    change: (i) => {
      i.leases = [lease("node1", 60), lease("node2", 90)] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "speakers",
        cause: "none of the 2 speaker Leases",
        evidence: "the newest renewal is 60 s old",
      },
      { severity: "warning", check: "speaker-on-node", subject: "node node1", cause: "60 s old" },
      { severity: "problem", check: "pool-advertised", cause: "has a live speaker" },
      { severity: "problem", check: "announced", cause: "2 without a live speaker" },
    ],
  },
  {
    name: "no speaker Lease at all",
    change: (i) => {
      i.leases = [];
    },
    expect: [{ severity: "problem", check: "speakers", cause: "no speaker Lease exists" }],
  },
  {
    name: "fresh Leases but no IPAnnouncement: heartbeat suspicion",
    change: (i) => {
      i.announcements = [];
    },
    expect: [
      {
        severity: "warning",
        check: "announced",
        cause: "is about to announce it; if this lasts while the speaker Leases are fresh",
        fix: "UDP port 7947",
      },
    ],
  },
  {
    name: "the record names another node than the speakers choose",
    change: (i) => {
      i.announcements = [record("198.51.100.7", "node9")] as never;
    },
    expect: [{ severity: "warning", check: "announced", cause: "moving: node9 recorded" }],
  },
  {
    name: "an IP announced by several nodes recently",
    change: (i) => {
      i.events = ["node1", "node2"].map((n, k) => ({
        involvedObject: { kind: "Service", namespace: "shop", name: "web" },
        reason: "NodeAnnouncing",
        message: `Node ${n} announces 198.51.100.7 on eth0`,
        lastTimestamp: ago(60 * (k + 1)),
      })) as never;
    },
    expect: [
      { severity: "warning", check: "ip-moves", cause: "by 2 nodes recently (node1, node2)" },
    ],
  },
  {
    name: "an address conflict Event",
    change: (i) => {
      i.events = [
        {
          involvedObject: { kind: "Service", namespace: "shop", name: "web" },
          reason: "IPConflict",
          message:
            "Node node2 did not announce 198.51.100.7: host 02:00:00:00:00:09 on eth0 already uses it; retrying in 30 s",
          lastTimestamp: ago(120),
        },
      ] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "ip-conflict",
        subject: "service shop/web 198.51.100.7",
        cause: "MAC 02:00:00:00:00:09 seen on eth0",
      },
    ],
  },
  {
    name: "an IP outside the pool its Service names",
    change: (i) => {
      i.services = [svc("web", "203.0.113.9")] as never;
    },
    expect: [
      {
        severity: "problem",
        check: "announced",
        cause: "203.0.113.9 is not in pool public",
        fix: "not written by ironlb",
      },
    ],
  },
  {
    name: "kube-proxy in IPVS mode without strictARP",
    change: (i) => {
      i.kubeProxy = { found: true, text: "mode: ipvs\nipvs:\n  strictARP: false\n" };
    },
    expect: [{ severity: "problem", check: "kube-proxy", fix: "strictARP: true" }],
  },
];

describe("diagnose", () => {
  it("finds nothing wrong in a healthy cluster", () => {
    const f = diagnose(healthy(), opts, NOW);
    expect(not("ok")(f)).toEqual([]);
    expect(f.map((x) => `${x.check} ${x.subject}`)).toEqual([
      "speakers cluster",
      "pool-ready pool public",
      "pool-advertised pool public",
      "service-ip service shop/web",
      "announced service shop/web 198.51.100.7",
      "kube-proxy cluster",
    ]);
    expect(exitCode(f)).toBe(0);
  });

  it.each(cases)("$name", (c) => {
    const input = healthy();
    c.change(input);
    const f = diagnose(input, { ...opts, ...(c.service ? { service: c.service } : {}) }, NOW);
    for (const want of c.expect) {
      const { cause, fix, evidence, ...exact } = want;
      expect(f).toContainEqual(
        expect.objectContaining({
          ...exact,
          ...(cause ? { cause: expect.stringContaining(cause) } : {}),
          ...(fix ? { fix: expect.stringContaining(fix) } : {}),
          ...(evidence ? { evidence: expect.stringContaining(evidence) } : {}),
        }),
      );
    }
    // Problems come first; the exit status says whether there is one.
    const sev = f.map((x) => x.severity);
    expect(sev).toEqual([...sev].sort((a, b) => order(a) - order(b)));
    expect(exitCode(f)).toBe(sev.includes("problem") ? 3 : 0);
  });

  it("asked about another Service: a drained node keeping some IP is said, not a problem", () => {
    const input = healthy();
    input.services = [
      svc("web", "198.51.100.7", { spec: { externalTrafficPolicy: "Local" } }),
      svc("api", "198.51.100.8"),
    ] as never;
    input.slices = [slice("web", "node2"), slice("api", "node1")] as never;
    drain(input, "node2", "true");
    const f = diagnose(input, { ...opts, service: "shop/api" }, NOW).filter(
      (x) => x.check === "drained",
    );
    expect(f.map((x) => x.severity)).toEqual(["ok"]);
    // The whole cluster: the same drained node is a problem.
    expect(
      diagnose(input, opts, NOW)
        .filter((x) => x.check === "drained")
        .map((x) => x.severity)
        .sort(),
    ).toEqual(["ok", "problem"]);
  });

  it("names only the taints a DaemonSet does not tolerate anyway", () => {
    const input = healthy();
    input.nodes.push({
      metadata: { name: "node3", labels: {} },
      spec: {
        taints: [
          { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" },
          { key: "node.kubernetes.io/unreachable", effect: "NoExecute" },
          { key: "soft", effect: "PreferNoSchedule" },
          { key: "dedicated", value: "db", effect: "NoExecute" },
        ],
      },
    } as never);
    const f = diagnose(input, opts, NOW).find((x) => x.subject === "node node3");
    expect(f?.evidence).toBe("taints: dedicated=db:NoExecute");
    input.nodes.at(-1)!.spec!.taints!.pop();
    const g = diagnose(input, opts, NOW).find((x) => x.subject === "node node3");
    expect(g?.evidence).toBeUndefined();
    expect(g?.fix).toContain("--field-selector spec.nodeName=node3");
  });

  it("ignores Events older than the window", () => {
    const input = healthy();
    input.events = [
      {
        involvedObject: { kind: "Service", namespace: "shop", name: "web" },
        reason: "IPConflict",
        message: "Node node2 did not announce 198.51.100.7: host 02:00:00:00:00:09 on eth0",
        lastTimestamp: ago(2 * 3600),
      },
    ] as never;
    expect(not("ok")(diagnose(input, opts, NOW))).toEqual([]);
  });

  it("checks only the named Service and its pool", () => {
    const input = healthy();
    input.services.push(svc("other") as never);
    input.pools.push({
      metadata: { name: "lonely" },
      spec: { addresses: ["192.0.2.0/28"] },
    } as never);
    const f = diagnose(input, { ...opts, service: "shop/web" }, NOW);
    expect(f.filter((x) => x.subject.includes("other") || x.subject.includes("lonely"))).toEqual(
      [],
    );
    expect(f.some((x) => x.subject === "service shop/web")).toBe(true);
    // Unnamed, both are checked.
    const all = diagnose(input, opts, NOW);
    expect(all.some((x) => x.subject === "service shop/other")).toBe(true);
    expect(all.some((x) => x.subject === "pool lonely")).toBe(true);
  });

  it("says why a named Service is not ironlb's", () => {
    const input = healthy();
    input.services.push(
      svc("theirs", undefined, { spec: { loadBalancerClass: "other/lb" } }) as never,
    );
    input.services.push(svc("internal", undefined, { spec: { type: "ClusterIP" } }) as never);
    const theirs = diagnose(input, { ...opts, service: "shop/theirs" }, NOW);
    expect(theirs[0]).toMatchObject({
      severity: "problem",
      check: "service-handled",
      subject: "service shop/theirs",
      cause:
        "its loadBalancerClass is other/lb, not ironlb.dev/lb: another implementation handles it",
    });
    expect(exitCode(theirs)).toBe(3);
    expect(diagnose(input, { ...opts, service: "shop/internal" }, NOW)[0]?.cause).toBe(
      "it is of type ClusterIP: ironlb gives IPs to Services of type LoadBalancer only",
    );
    const unclassed = diagnose(
      input,
      { ...opts, handleUnclassed: false, service: "shop/web" },
      NOW,
    );
    expect(unclassed[0]?.cause).toBe(
      "it has no loadBalancerClass, and --ignore-unclassed says ironlb leaves those to another implementation",
    );
    expect(
      diagnose(input, { ...opts, service: "shop/web" }, NOW).some(
        (f) => f.check === "service-handled",
      ),
    ).toBe(false);
  });

  it("leaves Services of another loadBalancerClass alone", () => {
    const input = healthy();
    input.services.push(
      svc("theirs", undefined, { spec: { loadBalancerClass: "other/lb" } }) as never,
    );
    expect(diagnose(input, opts, NOW).some((x) => x.subject.includes("theirs"))).toBe(false);
  });
});

const order = (s: Finding["severity"]) => ({ problem: 0, warning: 1, ok: 2 })[s];

describe("formatFindings", () => {
  it("prints each finding with its evidence and fix, then the counts", () => {
    const input = healthy();
    input.ads = [];
    const text = formatFindings(diagnose(input, opts, NOW));
    const lines = text.split("\n");
    expect(lines[0]).toBe(
      "PROBLEM  pool public: no L2Advertisement or BGPAdvertisement selects pool public: its IPs are assigned but not announced",
    );
    expect(lines[1]).toBe("         evidence: no advertisement exists");
    expect(lines[2]).toMatch(
      /^ {9}fix: create an L2Advertisement \(or a BGPAdvertisement, in BGP mode\) with ipAddressPools: \[public\]/,
    );
    expect(lines).toContain(
      "OK       speakers cluster: 2 of 2 speakers live".replace("speakers cluster", "cluster"),
    );
    expect(lines.at(-1)).toBe("2 problem(s), 0 warning(s), 4 ok");
  });
});
