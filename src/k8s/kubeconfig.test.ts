import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeClient } from "./client.ts";
import { fromKubeconfig, kubeconfigPaths } from "./kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const kubeconfig = (user: string, extra = "") => `apiVersion: v1
kind: Config
current-context: c
contexts:
- name: c
  context: { cluster: k, user: u }
clusters:
- name: k
  cluster:
    server: https://203.0.113.1:6443
    certificate-authority-data: ${b64("CA")}
${extra}
users:
- name: u
  user:
${user}
`;

describe("fromKubeconfig", () => {
  it("reads inline certificates", () => {
    const c = fromKubeconfig(
      kubeconfig(`    client-certificate-data: ${b64("CERT")}\n    client-key-data: ${b64("KEY")}`),
      "f",
    );
    expect(c.server).toBe("https://203.0.113.1:6443");
    expect(c.ca?.toString()).toBe("CA");
    expect(c.cert?.toString()).toBe("CERT");
    expect(c.key?.toString()).toBe("KEY");
    expect(c.token).toBeUndefined();
  });

  it("reads a bearer token", () => {
    const c = fromKubeconfig(kubeconfig("    token: abc"), "f");
    expect(c.token?.()).toBe("abc");
  });

  it.each([
    ["an exec plugin", kubeconfig("    exec: { command: aws }"), /exec\/auth-provider plugin/],
    [
      "a missing context",
      kubeconfig("    token: x").replace("current-context: c", "current-context: nope"),
      /current-context "nope" not found/,
    ],
    ["broken YAML", "a: [", /not valid YAML/],
    ["an empty file", "", /is not valid YAML: expected a document/],
  ])("explains %s", (_n, text, msg) => {
    expect(() => fromKubeconfig(text, "f")).toThrow(msg);
  });
});

describe("kubeconfig files", () => {
  let dir: string;
  let savedEnv: string | undefined;
  let savedCwd: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ironlb-kubeconfig-"));
    savedEnv = process.env.KUBECONFIG;
    savedCwd = process.cwd();
  });
  afterEach(() => {
    process.chdir(savedCwd);
    if (savedEnv === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = savedEnv;
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (rel: string, text: string) => {
    const p = join(dir, rel);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, text);
    return p;
  };

  it("resolves relative certificate, key and token paths against the kubeconfig's folder", () => {
    write("conf/pki/ca.crt", "CA-FILE");
    write("conf/pki/user.crt", "CERT-FILE");
    write("conf/pki/user.key", "KEY-FILE");
    write("conf/token", "TOKEN-FILE\n");
    const file = write(
      "conf/config",
      `current-context: c
contexts: [{ name: c, context: { cluster: k, user: u } }]
clusters: [{ name: k, cluster: { server: "https://203.0.113.1:6443", certificate-authority: pki/ca.crt } }]
users: [{ name: u, user: { client-certificate: pki/user.crt, client-key: ./pki/user.key, tokenFile: token } }]
`,
    );
    process.chdir(tmpdir()); // anywhere but the kubeconfig's folder
    const c = KubeClient.load(file).config;
    expect(c.ca?.toString()).toBe("CA-FILE");
    expect(c.cert?.toString()).toBe("CERT-FILE");
    expect(c.key?.toString()).toBe("KEY-FILE");
    expect(c.token?.()).toBe("TOKEN-FILE");
  });

  it("names the file it cannot read", () => {
    const file = write(
      "config",
      `current-context: c
contexts: [{ name: c, context: { cluster: k, user: u } }]
clusters: [{ name: k, cluster: { server: "https://203.0.113.1:6443", certificate-authority: missing.crt } }]
users: [{ name: u, user: {} }]
`,
    );
    expect(() => KubeClient.load(file)).toThrow(`cannot read ${join(dir, "missing.crt")}`);
  });

  it("merges every $KUBECONFIG file as kubectl does: the first to set a name or the context wins", () => {
    write("a/ca.crt", "CA-A");
    write("b/ca.crt", "CA-B");
    // a: no current-context, defines cluster k (its own relative CA) and user u.
    const a = write(
      "a/config",
      `contexts: [{ name: first, context: { cluster: k, user: u } }]
clusters: [{ name: k, cluster: { server: "https://203.0.113.1:6443", certificate-authority: ca.crt } }]
users: [{ name: u, user: { token: from-a } }]
`,
    );
    // b: sets current-context, redefines k and u (ignored: a was first), adds context second.
    const b = write(
      "b/config",
      `current-context: second
contexts: [{ name: second, context: { cluster: k, user: u } }, { name: first, context: { cluster: x, user: x } }]
clusters: [{ name: k, cluster: { server: "https://203.0.113.2:6443", certificate-authority: ca.crt } }]
users: [{ name: u, user: { token: from-b } }]
`,
    );
    // c: a later current-context does not override b's.
    const c = write("c/config", "current-context: first\n");
    process.env.KUBECONFIG = [join(dir, "absent"), a, "", b, c].join(":");
    const cfg = KubeClient.load().config;
    expect(cfg.server).toBe("https://203.0.113.1:6443");
    expect(cfg.ca?.toString()).toBe("CA-A");
    expect(cfg.token?.()).toBe("from-a");
  });

  it("splits $KUBECONFIG, dropping empty entries and repeats", () => {
    expect(kubeconfigPaths("/a::/b:/a:")).toEqual(["/a", "/b"]);
    expect(kubeconfigPaths(undefined)).toEqual([]);
  });
});
