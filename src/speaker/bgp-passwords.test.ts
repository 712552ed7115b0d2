import { describe, expect, it } from "vitest";
import { passwordFromSecret, type SecretLike, secretPath } from "./bgp-passwords.ts";

const NS = "lb-system";
const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
const secret = (type: string | undefined, data?: Record<string, string>): SecretLike => ({
  metadata: { name: "bgp-md5", namespace: NS },
  ...(type === undefined ? {} : { type }),
  ...(data === undefined ? {} : { data }),
});
const basic = (password: string | Buffer) =>
  secret("kubernetes.io/basic-auth", { username: b64("ignored"), password: b64(password) });
const ref = { name: "bgp-md5" };
const where = `passwordSecret ${NS}/bgp-md5`;

describe("passwordFromSecret", () => {
  it("gives nothing when the peer names no Secret", () => {
    expect(passwordFromSecret(undefined, NS, basic("x"))).toEqual({});
  });

  it.each<[string, SecretLike | undefined, object, string?]>([
    ["the password of a basic-auth Secret", basic("s3cret"), { password: "s3cret" }],
    ["80 bytes", basic("k".repeat(80)), { password: "k".repeat(80) }],
    ["UTF-8 text", basic("pässwört"), { password: "pässwört" }],
    ["no Secret", undefined, { error: `${where}: no such Secret` }],
    [
      "another type",
      secret("Opaque", { password: b64("s3cret") }),
      { error: `${where}: the Secret is of type Opaque; it must be kubernetes.io/basic-auth` },
    ],
    [
      "no type",
      secret(undefined, { password: b64("s3cret") }),
      { error: `${where}: the Secret is of type Opaque; it must be kubernetes.io/basic-auth` },
    ],
    [
      "no password key",
      secret("kubernetes.io/basic-auth", { username: b64("u") }),
      { error: `${where}: the Secret has no key "password"` },
    ],
    [
      "no data at all",
      secret("kubernetes.io/basic-auth"),
      { error: `${where}: the Secret has no key "password"` },
    ],
    [
      "an empty password",
      basic(""),
      { error: `${where}: the password has 0 bytes; TCP-MD5 allows 1 to 80` },
    ],
    [
      "81 bytes",
      basic("k".repeat(81)),
      { error: `${where}: the password has 81 bytes; TCP-MD5 allows 1 to 80` },
    ],
    [
      "bytes that are not UTF-8",
      basic(Buffer.from([0xff, 0xfe, 0x41])),
      { error: `${where}: the password is not UTF-8 text` },
    ],
  ])("%s", (_what, s, want) => {
    expect(passwordFromSecret(ref, NS, s)).toEqual(want);
  });

  it("reads only the speaker's namespace, which is also the default", () => {
    expect(passwordFromSecret({ name: "bgp-md5", namespace: NS }, NS, basic("s3cret"))).toEqual({
      password: "s3cret",
    });
    expect(passwordFromSecret({ name: "bgp-md5", namespace: "default" }, NS, basic("x"))).toEqual({
      error:
        "passwordSecret default/bgp-md5: the speakers read Secrets only in ironlb's namespace lb-system; create the Secret there",
    });
    expect(secretPath(ref, NS)).toBe("lb-system/bgp-md5");
  });
});
