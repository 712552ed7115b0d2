// MetalLB's legacy configuration (before v0.13: one ConfigMap whose `config` key holds
// YAML with `address-pools`, `peers`, `bgp-communities`, `bfd-profiles`) as the metallb.io
// objects that replaced it, so that migrate-metallb.ts converts both the same way. Pure.
// A layer2 pool gets an L2Advertisement and a bgp pool one BGPAdvertisement per entry of its
// `bgp-advertisements` (one without settings when it has none), each named after the pool,
// as MetalLB itself does when it reads this format; peers are named after their address.
import { load } from "js-yaml";

type Obj = Record<string, unknown>;

/** A legacy object with where it came from, for the comment above its conversion. */
export interface LegacyObject extends Obj {
  from: string;
}

/** Renames kebab-case keys per `names`; other keys stay as they are (and are warned about later). */
function renamed(o: Obj, names: Record<string, string>): Obj {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [names[k] ?? k, v]));
}

const PEER_FIELDS: Record<string, string> = {
  "peer-address": "peerAddress",
  "peer-asn": "peerASN",
  "my-asn": "myASN",
  "peer-port": "peerPort",
  "hold-time": "holdTime",
  "keepalive-time": "keepaliveTime",
  "router-id": "routerID",
  "source-address": "sourceAddress",
  "bfd-profile": "bfdProfile",
  "ebgp-multihop": "ebgpMultiHop",
  "node-selectors": "nodeSelectors",
};
const POOL_FIELDS: Record<string, string> = {
  "auto-assign": "autoAssign",
  "avoid-buggy-ips": "avoidBuggyIPs",
};
const ADVERTISEMENT_FIELDS: Record<string, string> = {
  "aggregation-length": "aggregationLength",
  "aggregation-length-v6": "aggregationLengthV6",
  localpref: "localPref",
};
const BFD_FIELDS: Record<string, string> = {
  "receive-interval": "receiveInterval",
  "transmit-interval": "transmitInterval",
  "detect-multiplier": "detectMultiplier",
  "echo-interval": "echoInterval",
  "echo-mode": "echoMode",
  "passive-mode": "passiveMode",
  "minimum-ttl": "minimumTtl",
};
const SELECTOR_FIELDS = { "match-labels": "matchLabels", "match-expressions": "matchExpressions" };

export function isLegacyConfigMap(o: Obj): boolean {
  return o.kind === "ConfigMap" && typeof (o.data as Obj | undefined)?.config === "string";
}

/** The metallb.io objects a legacy ConfigMap stands for; problems go to `errors`/`warnings`. */
export function legacyObjects(cm: Obj, warnings: string[], errors: string[]): LegacyObject[] {
  const m = (cm.metadata ?? {}) as Obj;
  const namespace = m.namespace;
  const where = `ConfigMap ${namespace ? `${String(namespace)}/` : ""}${String(m.name)}`;
  let config: Obj;
  try {
    config = (load(String((cm.data as Obj).config)) ?? {}) as Obj;
  } catch (err) {
    errors.push(`${where}: its config is not YAML: ${(err as Error).message.split("\n")[0]}`);
    return [];
  }
  const out: LegacyObject[] = [];
  const obj = (kind: string, name: string, spec: Obj, from: string, version = "v1beta1") => {
    out.push({
      apiVersion: `metallb.io/${version}`,
      kind,
      metadata: { name, ...(namespace ? { namespace } : {}) },
      spec,
      from: `${where} ${from}`,
    });
  };

  for (const key of Object.keys(config)) {
    if (!["address-pools", "peers", "bgp-communities", "bfd-profiles"].includes(key))
      warnings.push(`${where}: ${key} is not converted: ironlb has no equivalent`);
  }
  const communities = (config["bgp-communities"] ?? {}) as Record<string, unknown>;
  if (Object.keys(communities).length > 0)
    obj(
      "Community",
      `${String(m.name)}-communities`,
      {
        communities: Object.entries(communities).map(([name, value]) => ({
          name,
          value: String(value),
        })),
      },
      "bgp-communities",
    );

  ((config["bfd-profiles"] ?? []) as Obj[]).forEach((p, i) => {
    const { name, ...rest } = p;
    obj("BFDProfile", String(name ?? `bfd-${i}`), renamed(rest, BFD_FIELDS), `bfd-profiles[${i}]`);
  });

  const peerNames = new Set<string>();
  ((config.peers ?? []) as Obj[]).forEach((p, i) => {
    const spec = renamed(p, PEER_FIELDS);
    if (Array.isArray(spec.nodeSelectors))
      spec.nodeSelectors = (spec.nodeSelectors as Obj[]).map((s) => renamed(s, SELECTOR_FIELDS));
    let name = `peer-${String(spec.peerAddress ?? i)
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")}`.replace(/-+$/, "");
    if (peerNames.has(name)) name = `${name}-${i}`;
    peerNames.add(name);
    obj("BGPPeer", name, spec, `peers[${i}]`, "v1beta2");
  });

  ((config["address-pools"] ?? []) as Obj[]).forEach((p, i) => {
    const { name, protocol, "bgp-advertisements": ads, ...rest } = p;
    const pool = String(name ?? `pool-${i}`);
    obj("IPAddressPool", pool, renamed(rest, POOL_FIELDS), `address-pools[${i}]`);
    if (protocol === "layer2") {
      obj("L2Advertisement", pool, { ipAddressPools: [pool] }, `address-pools[${i}] (layer2)`);
    } else if (protocol === "bgp") {
      const list = Array.isArray(ads) && ads.length > 0 ? (ads as Obj[]) : [{}];
      for (const [j, a] of list.entries())
        obj(
          "BGPAdvertisement",
          list.length === 1 ? pool : `${pool}-${j}`,
          { ...renamed(a, ADVERTISEMENT_FIELDS), ipAddressPools: [pool] },
          `address-pools[${i}].bgp-advertisements[${j}]`,
        );
    } else {
      warnings.push(
        `${where}: address-pools[${i}] (${pool}) has protocol ${String(protocol)}: only layer2 and bgp are converted; the pool is converted without advertisement`,
      );
    }
  });
  return out;
}
