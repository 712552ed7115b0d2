import { describe, expect, it } from "vitest";
import type { Finding } from "./doctor-findings.ts";
import { checkKubeProxy, type KubeProxyConfig } from "./doctor-kube-proxy.ts";

const svc = (ipMode: "VIP" | "Proxy") => ({
  metadata: { name: "web", namespace: "shop" },
  spec: { type: "LoadBalancer" },
  status: { loadBalancer: { ingress: [{ ip: "198.51.100.7", ipMode }] } },
});

describe("checkKubeProxy", () => {
  const vip = [svc("VIP")] as never;
  const proxy = [svc("Proxy")] as never;
  const table: Array<[string, KubeProxyConfig, never, Finding["severity"], string]> = [
    [
      "iptables (default mode)",
      {
        found: true,
        text: 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ""\n',
      },
      vip,
      "ok",
      "mode iptables",
    ],
    ["nftables", { found: true, text: "mode: nftables\n" }, vip, "ok", "mode nftables"],
    [
      "ipvs with strictARP",
      { found: true, text: "mode: ipvs\nipvs:\n  strictARP: true\n" },
      vip,
      "ok",
      "strictARP: true",
    ],
    [
      "ipvs without strictARP",
      { found: true, text: "mode: ipvs\n" },
      vip,
      "problem",
      "IPVS mode without strictARP",
    ],
    [
      "ipvs without strictARP, only Proxy-mode IPs",
      { found: true, text: "mode: ipvs\n" },
      proxy,
      "warning",
      "IPVS mode without strictARP",
    ],
    ["not YAML", { found: true, text: "mode: [ipvs\n" }, vip, "warning", "is not YAML"],
    ["no ConfigMap", { found: false, reason: "missing" }, vip, "ok", "not checked"],
    [
      "forbidden",
      { found: false, reason: "forbidden", detail: "HTTP 403: no" },
      vip,
      "warning",
      "HTTP 403",
    ],
  ];
  it.each(table)("%s", (_name, cfg, services, severity, cause) => {
    const [f] = checkKubeProxy(cfg, services);
    expect(f?.severity).toBe(severity);
    expect(f?.cause).toContain(cause);
  });
});
