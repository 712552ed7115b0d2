import { describe, expect, it } from "vitest";
import { fromKubeconfig } from "./client.ts";

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
