// The `ironlb` command line: one binary, one subcommand per component.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_LB_CLASS } from "../api/service.ts";
import { DEFAULT_HEARTBEAT_PORT, MIN_HEARTBEAT_KEY_BYTES } from "../api/vocabulary.ts";

interface OptionSpec {
  type: "string" | "boolean";
  default?: string | boolean;
  /** A one-letter alias (`-o`). */
  short?: string;
  help: string;
}

interface Command {
  summary: string;
  /** The positional arguments it takes, for its usage line (none when absent). */
  args?: string;
  options: Record<string, OptionSpec>;
  /** Resolves with the exit status, when it returns a number (else 0). */
  run(
    values: Record<string, string | boolean | undefined>,
    positionals: string[],
  ): Promise<unknown>;
}

const num = (v: string | boolean | undefined, name: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new UsageError(`--${name} must be a non-negative number, got "${v}"`);
  return n;
};
const str = (v: string | boolean | undefined): string | undefined =>
  typeof v === "string" && v !== "" ? v : undefined;

class UsageError extends Error {}

/**
 * What the user typed to run this: installed (or linked) as `kubectl-ironlb`, the command
 * is a kubectl plugin, run as `kubectl ironlb status`, and its messages say so.
 */
const PROGRAM = basename(process.argv[1] ?? "") === "kubectl-ironlb" ? "kubectl ironlb" : "ironlb";

const silence = (v: Record<string, string | boolean | undefined>): number => {
  const s = num(v["watch-silence-timeout"], "watch-silence-timeout");
  if (s < 1) throw new UsageError("--watch-silence-timeout must be at least 1 second");
  return s * 1000;
};

const metricsAuth = (v: Record<string, string | boolean | undefined>): "none" | "kubernetes" => {
  const m = v["metrics-auth"];
  if (m !== "none" && m !== "kubernetes")
    throw new UsageError(`--metrics-auth must be none or kubernetes, got "${m}"`);
  return m;
};

const common: Record<string, OptionSpec> = {
  kubeconfig: {
    type: "string",
    help: "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)",
  },
  "health-address": {
    type: "string",
    default: "0.0.0.0",
    help: "address of the /healthz, /readyz and /metrics server",
  },
  "metrics-auth": {
    type: "string",
    default: "none",
    help: "who may read /metrics: none (whoever reaches the port) or kubernetes (a bearer token that the API server authenticates and authorises for get on the non-resource URL /metrics)",
  },
  "watch-silence-timeout": {
    type: "string",
    default: "180",
    help: "seconds without an event or bookmark after which a watch is restarted; /healthz fails after twice that without progress",
  },
  help: { type: "boolean", help: "show this help" },
};

/**
 * The client-side rate limit of API requests, with the component's defaults. The API
 * server guards itself too (priority and fairness answers 429, which is retried after its
 * Retry-After); this keeps a component in a loop from being what makes it do so.
 */
function apiLimitOptions(qps: number, burst: number): Record<string, OptionSpec> {
  return {
    "api-qps": {
      type: "string",
      default: String(qps),
      help: "API requests per second on average, client-side (0: no limit; Lease renewals never wait)",
    },
    "api-burst": {
      type: "string",
      default: String(burst),
      help: "API requests at once beyond --api-qps",
    },
  };
}
const apiLimits = (v: Record<string, string | boolean | undefined>) => ({
  apiQps: num(v["api-qps"], "api-qps"),
  apiBurst: Math.max(1, num(v["api-burst"], "api-burst")),
});

/** Which Services a component handles: controller and speakers must agree. */
const classOptions: Record<string, OptionSpec> = {
  "lb-class": { type: "string", default: DEFAULT_LB_CLASS, help: "spec.loadBalancerClass handled" },
  "ignore-unclassed": {
    type: "boolean",
    default: false,
    help: "leave Services without a loadBalancerClass to another implementation",
  },
};

const commands: Record<string, Command> = {
  controller: {
    summary: "assign external IPs from IPAddressPools to LoadBalancer Services",
    options: {
      ...common,
      "health-port": {
        type: "string",
        default: "7472",
        help: "port of the health and metrics server",
      },
      ...classOptions,
      "ip-mode": {
        type: "string",
        default: "VIP",
        help: "status ipMode written: VIP (kube-proxy handles the IP) or Proxy",
      },
      namespace: {
        type: "string",
        default: process.env.POD_NAMESPACE ?? "ironlb-system",
        help: "namespace of the leader-election Lease and of the speakers' Leases",
      },
      "leader-elect": {
        type: "boolean",
        default: true,
        help: "run leader election (--no-leader-elect for a single replica)",
      },
      "lease-duration": { type: "string", default: "15", help: "leader lease duration, seconds" },
      "renew-deadline": { type: "string", default: "10", help: "leader renew deadline, seconds" },
      "retry-period": {
        type: "string",
        default: "2",
        help: "leader election retry period, seconds",
      },
      concurrency: { type: "string", default: "16", help: "parallel Service reconciles" },
      // About the measured pace of a cold start at 10,000 Services (533 writes/s,
      // bench/RESULTS.md; the apiserver took 877/s): a start is barely slowed (a burst
      // covers 1,000 Services), a loop is held to ~60 % of what the apiserver took.
      ...apiLimitOptions(500, 1000),
      instance: {
        type: "string",
        help: "identity for the lease and Events (default: $POD_NAME or host-pid)",
      },
      "heartbeat-secret": {
        type: "string",
        default: "",
        help: "Secret in --namespace holding the speakers' heartbeat key: created with a random key when missing, never changed (empty: none)",
      },
      "heartbeat-secret-key": {
        type: "string",
        default: "secret",
        help: "data key of --heartbeat-secret",
      },
    },
    async run(v) {
      const ipMode = v["ip-mode"];
      if (ipMode !== "VIP" && ipMode !== "Proxy")
        throw new UsageError(`--ip-mode must be VIP or Proxy, got "${ipMode}"`);
      const { runController, defaultInstance } = await import("../controller/main.ts");
      // The speakers' own verdict on who may announce: the controller writes it as the
      // Services' Announceable condition, and must not import the speaker itself.
      const { ANNOUNCEABLE_MESSAGE, announceVerdicts } = await import("../speaker/announceable.ts");
      await runController({
        kubeconfig: str(v.kubeconfig),
        namespace: String(v.namespace),
        leaderElection: v["leader-elect"] === true,
        leaseDurationMs: num(v["lease-duration"], "lease-duration") * 1000,
        renewDeadlineMs: num(v["renew-deadline"], "renew-deadline") * 1000,
        retryPeriodMs: num(v["retry-period"], "retry-period") * 1000,
        healthAddress: String(v["health-address"]),
        healthPort: num(v["health-port"], "health-port"),
        metricsAuth: metricsAuth(v),
        watchSilenceTimeoutMs: silence(v),
        lbClass: String(v["lb-class"]),
        handleUnclassed: v["ignore-unclassed"] !== true,
        ipMode,
        concurrency: Math.max(1, num(v.concurrency, "concurrency")),
        instance: str(v.instance) ?? defaultInstance(),
        heartbeatSecret: str(v["heartbeat-secret"])
          ? { name: String(v["heartbeat-secret"]), key: String(v["heartbeat-secret-key"]) }
          : undefined,
        ...apiLimits(v),
        announce: {
          judge: announceVerdicts,
          namespace: String(v.namespace),
          announceableMessage: ANNOUNCEABLE_MESSAGE,
        },
      });
    },
  },
  speaker: {
    summary:
      "announce this node's share of the Service IPs with ARP/NDP (one per node, host network)",
    options: {
      ...common,
      "health-port": {
        type: "string",
        default: "7473",
        help: "port of the health and metrics server",
      },
      "node-name": {
        type: "string",
        default: process.env.NODE_NAME ?? hostname(),
        help: "this node's name (default $NODE_NAME, else the host name)",
      },
      "node-address": {
        type: "string",
        default: process.env.NODE_IP ?? "",
        help: "this node's IP, where peers send heartbeats (default $NODE_IP)",
      },
      ...classOptions,
      namespace: {
        type: "string",
        default: process.env.POD_NAMESPACE ?? "ironlb-system",
        help: "namespace of the speakers' Leases",
      },
      "lease-duration": {
        type: "string",
        default: "6",
        help: "speaker Lease duration, seconds (membership authority)",
      },
      "lease-renew": {
        type: "string",
        default: "2",
        help: "speaker Lease renew interval, seconds",
      },
      "heartbeat-port": {
        type: "string",
        default: String(DEFAULT_HEARTBEAT_PORT),
        help: "UDP port for speaker-to-speaker heartbeats; 0 turns them off",
      },
      "heartbeat-secret-file": {
        type: "string",
        default: process.env.IRONLB_HEARTBEAT_SECRET_FILE ?? "",
        help: `file with the shared heartbeat key (>= ${MIN_HEARTBEAT_KEY_BYTES} bytes) beats are sent with; <file>.next and <file>.previous, if present, are accepted too (key rotation); all read again every 10 s and on SIGHUP`,
      },
      "heartbeat-interval-ms": {
        type: "string",
        default: "100",
        help: "heartbeat interval, milliseconds",
      },
      "heartbeat-dead-after-ms": {
        type: "string",
        default: "350",
        help: "a peer silent this long is dead, milliseconds",
      },
      "probe-ms": {
        type: "string",
        default: "300",
        help: "RFC 5227 probe time before first announcing a new IP, milliseconds (0: no probe)",
      },
      "conflict-retry": {
        type: "string",
        default: "30",
        help: "seconds before an IP found in use by another host is probed again",
      },
      "bgp-drain-delay": {
        type: "string",
        default: "5",
        help: "seconds a drained node (ironlb.dev/drain) sends its BGP routes with the graceful-shutdown community 65535:0 before withdrawing them",
      },
      daemonset: {
        type: "string",
        default: "",
        help: "the speaker's DaemonSet in --namespace: on SIGTERM, while it exists and the node is not leaving (drained, cordoned, shutting down, deleted), BGP sessions with graceful restart close without a Cease so the routers keep the routes; empty: every stop sends a Cease",
      },
      // One speaker per node: together they are many clients. The kubelet's defaults.
      ...apiLimitOptions(50, 100),
    },
    async run(v) {
      const { runSpeaker } = await import("../speaker/main.ts");
      await runSpeaker({
        kubeconfig: str(v.kubeconfig),
        node: String(v["node-name"]),
        nodeAddress: str(v["node-address"]),
        namespace: String(v.namespace),
        lbClass: String(v["lb-class"]),
        handleUnclassed: v["ignore-unclassed"] !== true,
        leaseDurationMs: num(v["lease-duration"], "lease-duration") * 1000,
        renewIntervalMs: num(v["lease-renew"], "lease-renew") * 1000,
        heartbeatPort: num(v["heartbeat-port"], "heartbeat-port"),
        heartbeatSecretFile: str(v["heartbeat-secret-file"]),
        heartbeatIntervalMs: num(v["heartbeat-interval-ms"], "heartbeat-interval-ms"),
        heartbeatDeadAfterMs: num(v["heartbeat-dead-after-ms"], "heartbeat-dead-after-ms"),
        probeMs: num(v["probe-ms"], "probe-ms"),
        conflictRetryMs: num(v["conflict-retry"], "conflict-retry") * 1000,
        bgpDrainDelayMs: num(v["bgp-drain-delay"], "bgp-drain-delay") * 1000,
        daemonSet: str(v.daemonset),
        healthAddress: String(v["health-address"]),
        healthPort: num(v["health-port"], "health-port"),
        metricsAuth: metricsAuth(v),
        watchSilenceTimeoutMs: silence(v),
        ...apiLimits(v),
      });
    },
  },
  cleanup: {
    summary:
      "remove ironlb's Leases, IPAnnouncements and heartbeat Secret after an uninstall; Services keep their IPs unless --no-keep-addresses",
    options: {
      kubeconfig: common.kubeconfig!,
      help: common.help!,
      ...classOptions,
      namespace: {
        type: "string",
        default: process.env.POD_NAMESPACE ?? "ironlb-system",
        help: "namespace of the components' Leases and heartbeat Secret",
      },
      "heartbeat-secret": {
        type: "string",
        default: "",
        help: "heartbeat Secret to delete if the controller made it (empty: none)",
      },
      wait: {
        type: "string",
        default: "60",
        help: "seconds to wait for the controller and speakers to stop first",
      },
      "keep-addresses": {
        type: "boolean",
        default: true,
        help: "Services keep their status IPs, ironlb.dev/IPAllocated condition and pool annotation, so that a reinstall gives the same IPs (default; --no-keep-addresses removes those too)",
      },
    },
    async run(v) {
      const { cleanup } = await import("../controller/cleanup.ts");
      const { KubeClient } = await import("../k8s/client.ts");
      const { createLogger } = await import("../observability/log.ts");
      await cleanup(
        KubeClient.load(str(v.kubeconfig)),
        {
          namespace: String(v.namespace),
          lbClass: String(v["lb-class"]),
          handleUnclassed: v["ignore-unclassed"] !== true,
          heartbeatSecret: str(v["heartbeat-secret"]),
          waitMs: num(v.wait, "wait") * 1000,
          keepAddresses: v["keep-addresses"] !== false,
        },
        createLogger("cleanup"),
      );
    },
  },
  status: {
    summary:
      "print, per Service, its IPs, pool, announcing node and interfaces, and why one is pending or not announced; in BGP mode also which nodes advertise each IP to which peer, and every node's BGP sessions",
    options: {
      kubeconfig: common.kubeconfig!,
      namespace: { type: "string", help: "only Services of this namespace (default: all)" },
      ...classOptions,
      help: common.help!,
    },
    async run(v) {
      const { KubeClient } = await import("../k8s/client.ts");
      const {
        fetchBgpStatusInput,
        fetchStatusInput,
        formatRows,
        liveByLease,
        statusObjects,
        statusRows,
      } = await import("./status.ts");
      const { advertiserRows, formatTable, sessionRows } = await import("./status-bgp.ts");
      const api = KubeClient.load(str(v.kubeconfig));
      const [input, bgp] = await Promise.all([
        fetchStatusInput(api, str(v.namespace)),
        fetchBgpStatusInput(api),
      ]);
      const filter = {
        lbClass: String(v["lb-class"]),
        handleUnclassed: v["ignore-unclassed"] !== true,
      };
      const now = Date.now();
      const rows = statusRows(input, filter, now, bgp);
      console.log(
        rows.length > 0 ? formatRows(rows) : "no LoadBalancer Services handled by ironlb",
      );
      // BGP mode, when in use: who advertises what to which router, and the sessions.
      const advertisers = advertiserRows(
        statusObjects(input, filter),
        bgp,
        liveByLease(input.leases, now),
        input.announcements,
      );
      if (advertisers.length > 0)
        console.log(
          `\n${formatTable({ service: "SERVICE", ip: "IP", peer: "BGP PEER", nodes: "ADVERTISED BY" }, advertisers)}`,
        );
      const sessions = sessionRows(bgp);
      if (sessions.length > 0)
        console.log(
          `\n${formatTable(
            {
              node: "NODE",
              peer: "BGP PEER",
              state: "SESSION",
              prefixes: "PREFIXES",
              flaps: "FLAPS",
              lastError: "LAST ERROR",
            },
            sessions,
          )}`,
        );
    },
  },
  doctor: {
    summary:
      "check the cluster for what keeps Services from working (pools, advertisements, speakers, endpoints, kube-proxy, conflicts) and say how to fix it; exit status 3 when a problem is found",
    args: "[SERVICE]",
    options: {
      kubeconfig: common.kubeconfig!,
      namespace: {
        type: "string",
        help: "only Services of this namespace (default: all); SERVICE may then be a bare name",
      },
      output: { type: "string", short: "o", default: "table", help: "table or json" },
      "bgp-down-after": {
        type: "string",
        default: "60",
        help: "seconds a BGP session may be down (not Established) before it is a problem",
      },
      ...classOptions,
      help: common.help!,
    },
    async run(v, args) {
      const output = v.output;
      if (output !== "table" && output !== "json")
        throw new UsageError(`--output must be table or json, got "${output}"`);
      if (args.length > 1) throw new UsageError("at most one SERVICE");
      const namespace = str(v.namespace);
      let service = args[0];
      if (service !== undefined && !service.includes("/")) {
        if (!namespace)
          throw new UsageError("SERVICE is namespace/name, or a name with --namespace");
        service = `${namespace}/${service}`;
      }
      const { KubeClient } = await import("../k8s/client.ts");
      const { fetchDoctorInput } = await import("./doctor.ts");
      const { diagnose } = await import("./doctor-checks.ts");
      const { exitCode, formatFindings } = await import("./doctor-findings.ts");
      const api = KubeClient.load(str(v.kubeconfig));
      const { input, unreadable } = await fetchDoctorInput(
        api,
        namespace ?? service?.split("/")[0],
      );
      if (
        service &&
        !input.services.some((s) => `${s.metadata?.namespace}/${s.metadata?.name}` === service)
      )
        throw new Error(`Service ${service} not found`);
      const findings = [
        ...unreadable,
        ...diagnose(
          input,
          {
            lbClass: String(v["lb-class"]),
            handleUnclassed: v["ignore-unclassed"] !== true,
            ...(service ? { service } : {}),
            bgpDownAfterMs: num(v["bgp-down-after"], "bgp-down-after") * 1000,
          },
          Date.now(),
        ),
      ];
      console.log(
        output === "json" ? JSON.stringify({ findings }, null, 2) : formatFindings(findings),
      );
      return exitCode(findings);
    },
  },
  drain: {
    summary:
      "move every IP off a node before maintenance (Node annotation ironlb.dev/drain): the new owner announces first, the node withdraws after; in BGP mode its routes first carry the graceful-shutdown community; waits until the node announces nothing it can hand over (exit 3: it keeps IPs no other node can take; 4: --timeout)",
    args: "NODE",
    options: {
      kubeconfig: common.kubeconfig!,
      wait: {
        type: "boolean",
        default: true,
        help: "wait until the node announces nothing it can hand over, printing each move (--no-wait: set the annotation and return)",
      },
      timeout: { type: "string", default: "120", help: "seconds to wait at most" },
      force: {
        type: "boolean",
        default: false,
        help: "also withdraw the IPs no other node may announce (e.g. externalTrafficPolicy Local with the only ready endpoint on this node): they go unanswered",
      },
      ...classOptions,
      help: common.help!,
    },
    async run(v, args) {
      if (args.length !== 1) throw new UsageError("exactly one NODE");
      const node = args[0]!;
      const timeoutMs = num(v.timeout, "timeout") * 1000;
      const { KubeClient } = await import("../k8s/client.ts");
      const { setDrain, waitForDrain, DRAIN_EXIT } = await import("./drain.ts");
      const { fetchBgpStatusInput, fetchStatusInput } = await import("./status.ts");
      const api = KubeClient.load(str(v.kubeconfig));
      const read = async () => {
        const [input, bgp] = await Promise.all([fetchStatusInput(api), fetchBgpStatusInput(api)]);
        return { input, bgp };
      };
      // What it announced before: each of these is reported where it went.
      const { input } = await read();
      const before = new Set(
        input.announcements.flatMap((a) => (a.status?.node === node ? [a.status.ip] : [])),
      );
      await setDrain(api, node, v.force === true ? "force" : "true");
      console.log(
        `node ${node} drained (ironlb.dev/drain=${v.force === true ? "force" : "true"}); ${before.size} IP(s) announced from it`,
      );
      if (v.wait === false) return DRAIN_EXIT.done;
      return waitForDrain({
        node,
        filter: { lbClass: String(v["lb-class"]), handleUnclassed: v["ignore-unclassed"] !== true },
        timeoutMs,
        pollMs: 1000,
        read,
        say: (line) => console.log(line),
        before,
      });
    },
  },
  undrain: {
    summary:
      "let a drained node announce again (removes ironlb.dev/drain); nothing moves back at once (stickiness), new and failed-over IPs may land on it",
    args: "NODE",
    options: { kubeconfig: common.kubeconfig!, help: common.help! },
    async run(_v, args) {
      if (args.length !== 1) throw new UsageError("exactly one NODE");
      const { KubeClient } = await import("../k8s/client.ts");
      const { setDrain } = await import("./drain.ts");
      await setDrain(KubeClient.load(str(_v.kubeconfig)), args[0]!, undefined);
      console.log(`node ${args[0]} undrained`);
    },
  },
  "migrate-from-metallb": {
    summary:
      "print MetalLB's IPAddressPools, L2Advertisements, BGPPeers and BGPAdvertisements (from a file or the cluster; its legacy ConfigMap too) as ironlb objects, or write them with --apply; what cannot be converted is named on stderr",
    options: {
      file: {
        type: "string",
        short: "f",
        help: "YAML or JSON file of MetalLB objects (several documents and List kinds, as kubectl get -o yaml prints), - for stdin (default: read them from the cluster)",
      },
      namespace: {
        type: "string",
        help: "MetalLB's namespace: read from the cluster when no --file is given (default metallb-system); with --file, only the objects of this namespace (or of none) are converted",
      },
      "ironlb-namespace": {
        type: "string",
        help: "ironlb's namespace (default ironlb-system): BGPPeers' password Secrets go there, where the speakers read them",
      },
      apply: {
        type: "boolean",
        default: false,
        help: "write the converted objects to the cluster (server-side apply: running it again changes nothing) and print what was done, instead of printing them; refused while ironlb's CRDs are not installed",
      },
      kubeconfig: common.kubeconfig!,
      help: common.help!,
    },
    async run(v) {
      const { convertMetalLB, formatConversion } = await import("./migrate-metallb.ts");
      const input = await import("./migrate-metallb-input.ts");
      const file = str(v.file);
      let objects: unknown[];
      const namespace = str(v.namespace);
      if (file) objects = input.readObjectsFromFile(file, namespace);
      else {
        const { KubeClient } = await import("../k8s/client.ts");
        objects = await input.readObjectsFromCluster(
          KubeClient.load(str(v.kubeconfig)),
          namespace ?? "metallb-system",
        );
      }
      const ironlbNamespace = str(v["ironlb-namespace"]);
      const c = convertMetalLB(objects, [], ironlbNamespace ? { ironlbNamespace } : {});
      for (const w of c.warnings) console.error(`warning: ${w}`);
      if (c.errors.length > 0) {
        for (const e of c.errors) console.error(`error: ${e}`);
        return 1;
      }
      if (c.objects.length === 0) {
        console.error(
          "no MetalLB IPAddressPool, L2Advertisement, BGPPeer or BGPAdvertisement found",
        );
        return 1;
      }
      if (v.apply === true) {
        const { KubeClient } = await import("../k8s/client.ts");
        const { applyConversion } = await import("./migrate-metallb-apply.ts");
        const r = await applyConversion(KubeClient.load(str(v.kubeconfig)), c.objects);
        for (const line of r.lines) console.log(line);
        for (const e of r.errors) console.error(`error: ${e}`);
        return r.errors.length > 0 ? 1 : 0;
      }
      process.stdout.write(formatConversion(c));
      return 0;
    },
  },
  version: {
    summary: "print the version",
    options: { help: common.help! },
    async run() {
      const pkg = JSON.parse(
        readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
      ) as { version: string };
      console.log(`ironlb ${pkg.version}`);
    },
  },
};

function usage(): string {
  const lines = [`Usage: ${PROGRAM} <command> [options]`, "", "Commands:"];
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  for (const [name, c] of Object.entries(commands))
    lines.push(`  ${name.padEnd(width)}  ${c.summary}`);
  lines.push("", `Run \`${PROGRAM} <command> --help\` for a command's options.`);
  return lines.join("\n");
}

function commandUsage(name: string, c: Command): string {
  const args = c.args ? ` ${c.args}` : "";
  const lines = [`Usage: ${PROGRAM} ${name} [options]${args}`, "", c.summary, "", "Options:"];
  for (const [opt, o] of Object.entries(c.options)) {
    const names = o.short ? `--${opt}, -${o.short}` : `--${opt}`;
    const flag = o.type === "string" ? `${names} <value>` : names;
    // An empty default means "none": the help text says what then happens.
    const def = o.type === "string" && o.default ? ` (default ${o.default})` : "";
    lines.push(`  ${flag.padEnd(28)} ${o.help}${def}`);
  }
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`${PROGRAM}: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    const options = Object.fromEntries(
      Object.entries(cmd.options).map(([k, o]) => [
        k,
        { type: o.type, default: o.default, ...(o.short ? { short: o.short } : {}) } as const,
      ]),
    );
    const { values, positionals } = parseArgs({
      args: rest,
      options: options as never,
      allowNegative: true,
      allowPositionals: cmd.args !== undefined,
      strict: true,
    });
    const v = values as Record<string, string | boolean | undefined>;
    if (v.help) {
      console.log(commandUsage(name, cmd));
      return 0;
    }
    const status = await cmd.run(v, positionals);
    return typeof status === "number" ? status : 0;
  } catch (err) {
    if (
      err instanceof UsageError ||
      String((err as { code?: unknown }).code ?? "").startsWith("ERR_PARSE_ARGS")
    ) {
      console.error(`${PROGRAM} ${name}: ${(err as Error).message}\n\n${commandUsage(name, cmd)}`);
      return 2;
    }
    // Start-up failures (unreadable kubeconfig, missing secret, port in use) are the
    // user's to fix: one clear line, not a stack trace.
    const message = (err as Error).message ?? String(err);
    // The cluster answers 404 for ironlb's own kinds when its CRDs are not installed.
    const hint = /\/apis\/ironlb\.dev\/\S+: HTTP 404/.test(message)
      ? " (are ironlb's CRDs installed? helm install, or kubectl apply -f config/crd)"
      : "";
    console.error(`${PROGRAM} ${name}: ${message}${hint}`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
if (code !== 0) process.exit(code);
