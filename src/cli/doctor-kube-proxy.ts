// `ironlb doctor`'s kube-proxy check, over the text of its ConfigMap. Pure.
import type { V1Service } from "@kubernetes/client-node";
import { load } from "js-yaml";
import { type Finding, ok } from "./doctor-findings.ts";

/** kube-proxy's configuration as its ConfigMap holds it, or why it could not be read. */
export type KubeProxyConfig =
  | { found: true; text: string }
  | { found: false; reason: "missing" | "forbidden" | "error"; detail?: string };

/**
 * IPVS mode answers ARP for every Service IP on every node unless strictARP is set: the
 * LAN then sees several nodes claim the IP, and the one it picks may not be the announcer.
 */
export function checkKubeProxy(cfg: KubeProxyConfig, services: V1Service[]): Finding[] {
  const check = "kube-proxy";
  const subject = "cluster";
  if (!cfg.found) {
    if (cfg.reason === "missing")
      return [
        ok(
          check,
          subject,
          "no ConfigMap kube-system/kube-proxy (no kube-proxy, or one configured otherwise): IPVS strictARP not checked",
        ),
      ];
    return [
      {
        severity: "warning",
        check,
        subject,
        cause: `cannot read ConfigMap kube-system/kube-proxy${cfg.detail ? ` (${cfg.detail})` : ""}: IPVS strictARP not checked`,
        fix: "run doctor with permission to get that ConfigMap, or check its config.conf yourself: mode ipvs needs ipvs.strictARP: true",
      },
    ];
  }
  let conf: { mode?: unknown; ipvs?: { strictARP?: unknown } } | undefined;
  try {
    conf = load(cfg.text) as typeof conf;
  } catch (err) {
    return [
      {
        severity: "warning",
        check,
        subject,
        cause: `config.conf of ConfigMap kube-system/kube-proxy is not YAML (${(err as Error).message.split("\n")[0]}): IPVS strictARP not checked`,
        fix: "check its config.conf yourself: mode ipvs needs ipvs.strictARP: true",
      },
    ];
  }
  const mode = typeof conf?.mode === "string" && conf.mode !== "" ? conf.mode : "iptables";
  if (mode !== "ipvs") return [ok(check, subject, `kube-proxy mode ${mode}: no strictARP needed`)];
  if (conf?.ipvs?.strictARP === true)
    return [ok(check, subject, "kube-proxy mode ipvs with strictARP: true")];
  // Only IPs kube-proxy binds (ipMode VIP, the default) are answered by every node.
  const vip = services.some((s) =>
    (s.status?.loadBalancer?.ingress ?? []).some((i) => i.ip && (i.ipMode ?? "VIP") === "VIP"),
  );
  return [
    {
      severity: vip || services.length === 0 ? "problem" : "warning",
      check,
      subject,
      cause:
        "kube-proxy runs in IPVS mode without strictARP: every node answers ARP for every Service IP, not only the announcing one",
      fix: "set ipvs.strictARP: true in config.conf of ConfigMap kube-system/kube-proxy (kubectl -n kube-system edit configmap kube-proxy) and restart kube-proxy",
    },
  ];
}
