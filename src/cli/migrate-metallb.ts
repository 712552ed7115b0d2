// `ironlb migrate-from-metallb`: MetalLB's objects (metallb.io, and its legacy ConfigMap
// through migrate-metallb-legacy.ts) converted to ironlb's (ironlb.dev/v1beta1). Pure: the edge (migrate-metallb-input.ts) reads the objects from a
// file, stdin or the cluster. ironlb kept MetalLB's field names, so most fields carry over
// as they are; what ironlb cannot express is named in a warning (object and field), never
// dropped silently. MetalLB's objects live in a namespace, ironlb's are cluster-scoped: two
// MetalLB objects of one kind and name in different namespaces cannot both be converted.
import { dump, loadAll } from "js-yaml";
import { parseBFDProfile } from "../api/bfdprofile.ts";
import { parseBGPAdvertisement } from "../api/bgpadvertisement.ts";
import { parseBGPPeer } from "../api/bgppeer.ts";
import { apiVersion } from "../api/group.ts";
import { parseIPAddressPool } from "../api/ipaddresspool.ts";
import { parseL2Advertisement } from "../api/l2advertisement.ts";
import { formatIP, parseIP } from "../net/address.ts";
import { cidrRange, isMasked, parseCIDR } from "../net/cidr.ts";
import { parseAddressEntry } from "../net/range.ts";
import { isLegacyConfigMap, legacyObjects } from "./migrate-metallb-legacy.ts";

type Obj = Record<string, unknown>;

export interface ConvertedObject {
  /** Comment lines written above the object (without "# "). */
  comments: string[];
  object: Obj;
}

export interface Conversion {
  objects: ConvertedObject[];
  /** What could not be converted, or converts with a different meaning: for stderr. */
  warnings: string[];
  /** What stops the conversion (nothing is printed then). */
  errors: string[];
  /** The namespaces the converted objects came from. */
  namespaces: string[];
}

/** The parts of a Service the conversion reads (to see which pools share across namespaces). */
export interface ServiceLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { type?: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

const METALLB_GROUP = "metallb.io";
const CONVERTED = [
  "IPAddressPool",
  "L2Advertisement",
  "BGPPeer",
  "BGPAdvertisement",
  "BFDProfile",
] as const;

/** Fields of each converted kind's spec that ironlb has, under the same name. */
const SUPPORTED: Record<(typeof CONVERTED)[number], readonly string[]> = {
  IPAddressPool: ["addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"],
  L2Advertisement: ["ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "interfaces"],
  // issue 18 "What a user configures": MetalLB's names where ironlb has the field.
  BGPPeer: [
    "myASN",
    "peerASN",
    "dynamicASN",
    "peerAddress",
    "peerPort",
    "sourceAddress",
    "holdTime",
    "keepaliveTime",
    "connectTime",
    "routerID",
    "nodeSelectors",
    "ebgpMultiHop",
    "bfdProfile",
    // MetalLB's FRR mode uses FRR's 120 s restart time: ironlb's default gracefulRestartTime.
    "enableGracefulRestart",
  ],
  BGPAdvertisement: [
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "serviceSelectors",
    "nodeSelectors",
    "peers",
    "communities",
    "localPref",
    "aggregationLength",
    "aggregationLengthV6",
  ],
  // echoMode is checked below: ironlb runs BFD without echo.
  BFDProfile: [
    "receiveInterval",
    "transmitInterval",
    "detectMultiplier",
    "echoInterval",
    "echoMode",
    "passiveMode",
    "minimumTtl",
  ],
};

const SERVICE_ALLOCATION = ["priority", "namespaces", "namespaceSelectors", "serviceSelectors"];

/** Options of a conversion. */
export interface ConvertOptions {
  /** Where ironlb runs: the speakers read BGPPeers' passwordSecrets there only. */
  ironlbNamespace?: string;
}
export const DEFAULT_IRONLB_NAMESPACE = "ironlb-system";

/**
 * A MetalLB BGPPeer's TCP-MD5 password (`password` or `passwordSecret`) as ironlb's
 * `passwordSecret`, which names a Secret in ironlb's namespace. A plain password becomes a
 * Secret printed beside the peer (ironlb keeps no password in a cluster-scoped object);
 * MetalLB's Secret lives in MetalLB's namespace, so the warning says how to copy it.
 */
function convertPassword(
  spec: Obj,
  m: Obj,
  where: string,
  ironlbNs: string,
  warnings: string[],
): { passwordSecret?: Obj; secret?: ConvertedObject } {
  const peerName = String(m.name ?? "peer");
  if (typeof spec.password === "string" && spec.password !== "") {
    const name = `${peerName}-bgp-password`.slice(0, 253);
    warnings.push(
      `${where}: spec.password becomes Secret ${ironlbNs}/${name} (type kubernetes.io/basic-auth, key password), printed with the objects: ironlb keeps passwords in Secrets, never in the cluster-scoped BGPPeer; the output holds the password in clear text, keep it private`,
    );
    return {
      passwordSecret: { name },
      secret: {
        comments: [
          `the TCP-MD5 password of BGPPeer ${peerName} (MetalLB's spec.password), in ironlb's namespace`,
        ],
        object: {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name, namespace: ironlbNs },
          type: "kubernetes.io/basic-auth",
          stringData: { password: spec.password },
        },
      },
    };
  }
  const ref = spec.passwordSecret as Obj | undefined;
  if (ref !== undefined && typeof ref.name === "string" && ref.name !== "") {
    const from = String(ref.namespace ?? m.namespace ?? "metallb-system");
    if (from !== ironlbNs)
      warnings.push(
        `${where}: spec.passwordSecret names Secret ${from}/${ref.name}, but ironlb reads it in its own namespace ${ironlbNs}: copy it there before applying (kubectl -n ${ironlbNs} create secret generic ${ref.name} --type=kubernetes.io/basic-auth --from-literal=password="$(kubectl -n ${from} get secret ${ref.name} -o jsonpath='{.data.password}' | base64 -d)")`,
      );
    return { passwordSecret: { name: ref.name } };
  }
  return {};
}

/** Why some MetalLB fields have no ironlb twin yet, for the warning. */
const UNSUPPORTED_WHY: Record<string, string> = {
  vrf: "VRFs are not supported",
  interface: "unnumbered BGP (a session on an interface) is not supported",
  disableMP: "ironlb always negotiates multiprotocol (IPv4 and IPv6 on one session)",
  dualStackAddressFamily: "ironlb always negotiates multiprotocol (IPv4 and IPv6 on one session)",
};

/** Metadata a conversion keeps: the name, labels (pool selectors match them), annotations. */
function meta(m: Obj): Obj {
  const out: Obj = { name: m.name };
  const labels = m.labels as Record<string, string> | undefined;
  if (labels && Object.keys(labels).length > 0) out.labels = labels;
  const annotations = Object.fromEntries(
    Object.entries((m.annotations as Record<string, string> | undefined) ?? {}).filter(
      ([k]) => k !== "kubectl.kubernetes.io/last-applied-configuration",
    ),
  );
  if (Object.keys(annotations).length > 0) out.annotations = annotations;
  return out;
}

/**
 * Objects of YAML or JSON text: several documents (`---`), and the items of `List` kinds
 * (what `kubectl get -o yaml` prints) flattened. Empty documents are skipped.
 */
export function parseDocuments(text: string): unknown[] {
  const out: unknown[] = [];
  const add = (doc: unknown) => {
    if (doc === null || doc === undefined) return;
    const o = doc as Obj;
    if (typeof o.kind === "string" && o.kind.endsWith("List") && Array.isArray(o.items)) {
      for (const item of o.items) add(item);
    } else out.push(doc);
  };
  for (const doc of loadAll(text)) add(doc);
  return out;
}

const ref = (kind: string, m: Obj) =>
  `${kind} ${m.namespace ? `${String(m.namespace)}/` : ""}${String(m.name)}`;

/** A MetalLB address entry as ironlb writes it: MetalLB reads a CIDR's host bits as zero. */
function address(entry: string, where: string, warnings: string[]): string {
  const cidr = parseCIDR(entry);
  if (cidr && !isMasked(cidr)) {
    const masked = `${formatIP({ family: cidr.ip.family, value: cidrRange(cidr).first })}/${cidr.prefix}`;
    warnings.push(
      `${where}: spec.addresses entry ${entry} has host bits set; MetalLB reads it as ${masked}, which is written instead`,
    );
    return masked;
  }
  return entry;
}

const COMMUNITY_LITERAL = /^(\d+:\d+|large:\d+:\d+:\d+)$/;

/**
 * Converts MetalLB objects. `services`, when given (read from the cluster, or Services in
 * the input), tell which pools' IPs are shared across namespaces: ironlb allows that only
 * where the pool says `allowSharingAcrossNamespaces: true`, and MetalLB always does.
 */
export function convertMetalLB(
  input: unknown[],
  services: ServiceLike[] = [],
  opts: ConvertOptions = {},
): Conversion {
  const ironlbNs = opts.ironlbNamespace ?? DEFAULT_IRONLB_NAMESPACE;
  const warnings: string[] = [];
  const errors: string[] = [];
  const objects: ConvertedObject[] = [];
  const seen = new Map<string, string>(); // kind/name -> namespace
  const communities = new Map<string, string>(); // alias -> value
  const metallb: Array<{ kind: (typeof CONVERTED)[number]; m: Obj; spec: Obj; from: string }> = [];

  // The legacy ConfigMap stands for the objects that replaced it.
  const expanded = input.flatMap((raw) =>
    isLegacyConfigMap((raw ?? {}) as Obj) ? legacyObjects(raw as Obj, warnings, errors) : [raw],
  );
  for (const raw of expanded) {
    const o = (raw ?? {}) as Obj;
    const kind = String(o.kind ?? "");
    const av = String(o.apiVersion ?? "");
    const m = (o.metadata ?? {}) as Obj;
    if (kind === "Service" && av === "v1") {
      services = [...services, o as ServiceLike];
      continue;
    }
    if (!av.startsWith(`${METALLB_GROUP}/`)) {
      warnings.push(
        `${ref(kind || "object", m)} (${av || "no apiVersion"}): not a MetalLB object, skipped`,
      );
      continue;
    }
    const spec = (o.spec ?? {}) as Obj;
    if (kind === "Community") {
      for (const c of (spec.communities as Obj[] | undefined) ?? [])
        communities.set(String(c.name), String(c.value));
      continue;
    }
    if (!(CONVERTED as readonly string[]).includes(kind)) {
      warnings.push(`${ref(kind, m)} (${av}): ironlb has no equivalent, skipped`);
      continue;
    }
    const name = String(m.name ?? "");
    const ns = String(m.namespace ?? "");
    const key = `${kind}/${name}`;
    const other = seen.get(key);
    if (other !== undefined) {
      errors.push(
        other === ns
          ? `${kind} ${ns ? `${ns}/` : ""}${name} appears twice in the input`
          : `${kind} ${name} exists in namespaces ${other || "(none)"} and ${ns || "(none)"}: ironlb's ${kind}s are cluster-scoped, one per name; rename one of them (MetalLB uses only those of its own namespace: convert that namespace alone with --namespace)`,
      );
      continue;
    }
    seen.set(key, ns);
    metallb.push({
      kind: kind as (typeof CONVERTED)[number],
      m,
      spec,
      from: typeof o.from === "string" ? o.from : `${av} ${ref(kind, m)}`,
    });
  }

  const pools = metallb.filter((x) => x.kind === "IPAddressPool");
  if (pools.length > 0 && services.length === 0)
    warnings.push(
      "no Services in the input: pools whose IPs Services of different namespaces share cannot be found, and those Services would lose their IPs (such pools need allowSharingAcrossNamespaces: true); add them (kubectl get services -A -o yaml) or read from the cluster",
    );
  const sharedAcross = poolsSharedAcrossNamespaces(pools, services);

  for (const { kind, m, spec, from } of metallb) {
    const where = ref(kind, m);
    const out: Obj = {};
    let secret: ConvertedObject | undefined;
    if (kind === "BGPPeer") {
      const pw = convertPassword(spec, m, where, ironlbNs, warnings);
      if (pw.passwordSecret) out.passwordSecret = pw.passwordSecret;
      secret = pw.secret;
    }
    for (const [field, value] of Object.entries(spec)) {
      if (kind === "BGPPeer" && (field === "password" || field === "passwordSecret")) continue;
      if (!SUPPORTED[kind].includes(field)) {
        const why = UNSUPPORTED_WHY[field];
        warnings.push(
          `${where}: spec.${field} is not converted: ${why ?? `ironlb's ${kind} has no such field`}`,
        );
        continue;
      }
      out[field] = value;
    }
    const comments = [`from ${from}`];
    if (kind === "IPAddressPool") {
      if (Array.isArray(out.addresses))
        out.addresses = out.addresses.map((a) =>
          typeof a === "string" ? address(a, where, warnings) : a,
        );
      const sa = out.serviceAllocation as Obj | undefined;
      if (sa) {
        const kept: Obj = {};
        for (const [f, v] of Object.entries(sa)) {
          if (SERVICE_ALLOCATION.includes(f)) kept[f] = v;
          else
            warnings.push(
              `${where}: spec.serviceAllocation.${f} is not converted: ironlb has no such field`,
            );
        }
        out.serviceAllocation = kept;
        if (Array.isArray(sa.namespaceSelectors) && !Array.isArray(sa.namespaces))
          warnings.push(
            `${where}: spec.serviceAllocation.namespaceSelectors: when they match no namespace, MetalLB lets every namespace use the pool, ironlb none`,
          );
      }
      const shared = sharedAcross.get(String(m.name));
      if (shared) {
        out.serviceAllocation = {
          ...((out.serviceAllocation as Obj) ?? {}),
          allowSharingAcrossNamespaces: true,
        };
        comments.push(
          `allowSharingAcrossNamespaces: Services of different namespaces share ${shared} (MetalLB allows that always, ironlb only where the pool says so)`,
        );
      }
    }
    const errorsBefore = errors.length;
    if (kind === "BGPAdvertisement" && Array.isArray(out.communities)) {
      out.communities = out.communities.map((c) => {
        const text = String(c);
        if (COMMUNITY_LITERAL.test(text)) return text;
        const value = communities.get(text);
        if (value === undefined) {
          errors.push(
            `${where}: spec.communities names "${text}", which no Community object in the input defines`,
          );
          return text;
        }
        comments.push(`community ${text} = ${value} (from MetalLB's Community objects)`);
        return value;
      });
    }
    if (kind === "BFDProfile" && out.echoMode === true) {
      warnings.push(
        `${where}: spec.echoMode is not converted: ironlb's BFD runs without echo (asynchronous mode only); the profile's other timers apply`,
      );
      delete out.echoMode;
    }
    if (kind === "BGPPeer" || kind === "BGPAdvertisement" || kind === "BFDProfile")
      comments.push(
        `ironlb's ${kind} is new: check this object with kubectl explain ${kind.toLowerCase()}.spec`,
      );
    const object: Obj = { apiVersion, kind, metadata: meta(m), spec: out };
    // The checked twins of the CRDs say now what `kubectl apply` would refuse.
    const check = {
      IPAddressPool: parseIPAddressPool,
      L2Advertisement: parseL2Advertisement,
      BGPPeer: parseBGPPeer,
      BGPAdvertisement: parseBGPAdvertisement,
      BFDProfile: parseBFDProfile,
    }[kind](object);
    if (errors.length > errorsBefore) continue; // said already, more precisely
    if (!check.ok) {
      errors.push(
        `${where}: the converted object is not valid for ironlb: ${check.errors.join("; ")}`,
      );
      continue;
    }
    if (secret) objects.push(secret);
    objects.push({ comments, object });
  }
  const namespaces = [...new Set(metallb.map((x) => String(x.m.namespace ?? "")))]
    .filter((n) => n !== "")
    .sort();
  return { objects, warnings, errors, namespaces };
}

/** Pools (by name) holding an IP that Services of different namespaces share, with the IP. */
function poolsSharedAcrossNamespaces(
  pools: Array<{ m: Obj; spec: Obj }>,
  services: ServiceLike[],
): Map<string, string> {
  const byIP = new Map<string, Set<string>>();
  for (const s of services) {
    if (s.spec?.type !== "LoadBalancer") continue;
    for (const i of s.status?.loadBalancer?.ingress ?? []) {
      if (!i.ip) continue;
      const set = byIP.get(i.ip) ?? new Set();
      set.add(s.metadata?.namespace ?? "");
      byIP.set(i.ip, set);
    }
  }
  const out = new Map<string, string>();
  for (const [ip, namespaces] of byIP) {
    if (namespaces.size < 2) continue;
    const addr = parseIP(ip);
    if (!addr) continue;
    for (const p of pools) {
      const entries = ((p.spec.addresses as unknown[]) ?? []).flatMap((e) => {
        if (typeof e !== "string") return [];
        const cidr = parseCIDR(e);
        return cidr ? [cidrRange(cidr)] : (parseAddressEntry(e) ?? []);
      });
      if (
        entries.some(
          (r) => r.family === addr.family && r.first <= addr.value && addr.value <= r.last,
        )
      )
        if (!out.has(String(p.m.name))) out.set(String(p.m.name), ip);
    }
  }
  return out;
}

/** The YAML printed: a header, then each object with its comments. */
export function formatConversion(c: Conversion): string {
  const { namespaces } = c;
  const header = [
    "# ironlb objects converted from MetalLB's by `ironlb migrate-from-metallb`.",
    `# ironlb's objects are cluster-scoped: the namespace of MetalLB's (${namespaces.join(", ") || "none"}) is dropped.`,
    "# Services keep their IPs: ironlb's controller restores every IP a Service's status holds",
    "# when it lies in a pool the Service may use, and it reads MetalLB's Service annotations",
    "# (metallb.io/… and metallb.universe.tf/…: loadBalancerIPs, address-pool, allow-shared-ip).",
  ];
  const docs = c.objects.map(
    (o) =>
      `${o.comments.map((l) => `# ${l}`).join("\n")}\n${dump(o.object, { lineWidth: -1, noRefs: true })}`,
  );
  return `${header.join("\n")}\n${docs.map((d) => `---\n${d}`).join("")}`;
}
