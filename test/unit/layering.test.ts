// What each folder of src may import (README, "Development", says what each holds), for the
// rules a slip would break silently: the pure core (net, allocator, api) has no I/O and no
// Kubernetes, the wire folders (layer2, bgp, bfd) know nothing of Kubernetes, the API edge (k8s)
// depends on the rest for types only, and the speaker never reaches into the controller.
// Type-only imports count, except where a rule says types only: they are dependencies of
// the design too. Every folder of src needs a rule here.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const src = join(import.meta.dirname, "../../src");

interface Import {
  spec: string;
  /** `import type` / `export type`: erased at run time. */
  typeOnly: boolean;
}

/** Every module a source text imports or re-exports, as written (static and dynamic). */
function imports(source: string): Import[] {
  const re =
    /^\s*(?:import|export)\s([^;]*?)\sfrom\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;
  return [...source.matchAll(re)].map((m) => ({
    spec: (m[2] ?? m[3] ?? m[4]) as string,
    typeOnly: m[1] !== undefined && /^\s*type\s/.test(m[1]),
  }));
}

/** What the non-test files of a src folder import from outside that folder. */
function outsideImports(folder: string): (Import & { file: string })[] {
  return readdirSync(join(src, folder), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .flatMap((f) =>
      imports(readFileSync(join(src, folder, f), "utf8"))
        .filter(({ spec }) => !spec.startsWith("./"))
        .map((i) => ({ ...i, file: `src/${folder}/${f}` })),
    );
}

interface Rule {
  /** What the folder is, as the test's name. */
  says: string;
  /** Other src folders it may import from. */
  folders: readonly string[];
  /** Other src folders it may import types from (and nothing else). */
  typesFrom?: readonly string[];
  /** Node built-ins (`node:*`). */
  node?: boolean;
  /** Packages it may import; "any" for the edges whose packages runtime-imports checks. */
  packages?: readonly string[] | "any";
  /**
   * The folder's I/O edge: these files (relative to the folder) may also import node
   * built-ins and these packages; the rest of the folder stays pure.
   */
  edge?: { files: readonly string[]; packages: readonly string[] };
}

const ALL = [
  "net",
  "allocator",
  "api",
  "layer2",
  "bgp",
  "bfd",
  "speaker",
  "dataplane",
  "controller",
];
const EDGE = ["k8s", "observability"];

const rules: Record<string, Rule> = {
  net: { says: "imports nothing", folders: [] },
  allocator: { says: "imports only net", folders: ["net"] },
  api: {
    says: "imports only net (its checkers are its own: no zod at run time)",
    folders: ["net"],
  },
  layer2: { says: "imports only net and node built-ins", folders: ["net"], node: true },
  bgp: {
    says: "imports only net; only its TCP edge (session.ts, tcp-socket.ts) opens sockets or logs",
    folders: ["net"],
    // tcp-socket.ts loads the addon (createRequire) for TCP-MD5 sockets.
    edge: { files: ["session.ts", "tcp-socket.ts"], packages: ["pino"] },
  },
  bfd: {
    says: "imports nothing; only its UDP edge and worker (udp.ts, ttl-socket.ts, worker*.ts) do I/O",
    folders: [],
    // ttl-socket.ts loads the addon (createRequire) for the receive socket with TTLs.
    edge: {
      files: ["udp.ts", "ttl-socket.ts", "worker.ts", "worker-client.ts"],
      packages: ["pino"],
    },
  },
  speaker: {
    says: "never imports the controller",
    folders: [...ALL.filter((f) => f !== "controller" && f !== "speaker"), ...EDGE],
    node: true,
    packages: "any",
  },
  dataplane: {
    says: "imports only api (and logging)",
    folders: ["api", "observability"],
    node: true,
    packages: "any",
  },
  controller: {
    says: "imports allocator, api and k8s, never the speaker",
    folders: ["net", "allocator", "api", ...EDGE],
    node: true,
    packages: "any",
  },
  k8s: {
    says: "imports types only from the rest of src",
    folders: [],
    typesFrom: [...ALL, "observability"],
    node: true,
    packages: "any",
  },
  observability: {
    says: "imports only node built-ins and pino",
    folders: [],
    node: true,
    packages: ["pino"],
  },
  cli: { says: "may import everything", folders: [...ALL, ...EDGE], node: true, packages: "any" },
};

/** The folder a specifier reaches (`../net/address.ts` -> net), or undefined for packages. */
const folderOf = (spec: string) => spec.match(/^\.\.\/([^/]+)\//)?.[1];

function allowed(rule: Rule, i: Import): boolean {
  const folder = folderOf(i.spec);
  if (folder !== undefined) {
    return rule.folders.includes(folder) || (i.typeOnly && !!rule.typesFrom?.includes(folder));
  }
  if (i.spec.startsWith("node:")) return !!rule.node;
  if (rule.packages === "any") return true;
  return !!rule.packages?.some((p) => i.spec === p || i.spec.startsWith(`${p}/`));
}

/** The rule for one file: its folder's, widened by the edge for an edge file. */
function ruleFor(rule: Rule, folder: string, file: string): Rule {
  const e = rule.edge;
  if (e === undefined || !e.files.some((f) => file === `src/${folder}/${f}`)) return rule;
  const packages = rule.packages === "any" ? "any" : [...(rule.packages ?? []), ...e.packages];
  return { ...rule, node: true, packages };
}

/** The imports of `folder` that its rule does not allow. */
function violations(folder: string, rule: Rule): string[] {
  return outsideImports(folder)
    .filter((i) => !allowed(ruleFor(rule, folder, i.file), i))
    .map(({ file, spec }) => `${file}: ${spec}`);
}

const folders = readdirSync(src, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);

describe("layering", () => {
  it("finds static, type, re-export and dynamic imports", () => {
    expect(
      imports(`import type { V1Service } from "@kubernetes/client-node";
import {
  a,
  b,
} from "../net/address.ts";
export { z } from "zod";
export type { Y } from "../k8s/y.ts";
import "side-effect";
const m = await import("../controller/x.ts");`),
    ).toEqual([
      { spec: "@kubernetes/client-node", typeOnly: true },
      { spec: "../net/address.ts", typeOnly: false },
      { spec: "zod", typeOnly: false },
      { spec: "../k8s/y.ts", typeOnly: true },
      { spec: "side-effect", typeOnly: false },
      { spec: "../controller/x.ts", typeOnly: false },
    ]);
  });

  it("has a rule for every folder of src", () => {
    expect(folders.filter((f) => !(f in rules))).toEqual([]);
  });

  it("catches a slip: the speaker importing the controller, a codec importing Kubernetes", () => {
    const spk = rules.speaker as Rule;
    const l2 = rules.layer2 as Rule;
    expect(allowed(spk, { spec: "../controller/controller.ts", typeOnly: true })).toBe(false);
    expect(allowed(spk, { spec: "../layer2/announcer.ts", typeOnly: false })).toBe(true);
    expect(allowed(l2, { spec: "@kubernetes/client-node", typeOnly: true })).toBe(false);
    expect(allowed(l2, { spec: "../k8s/client.ts", typeOnly: false })).toBe(false);
    expect(allowed(rules.k8s as Rule, { spec: "../api/service.ts", typeOnly: false })).toBe(false);
    expect(allowed(rules.k8s as Rule, { spec: "../api/service.ts", typeOnly: true })).toBe(true);
    const bfd = rules.bfd as Rule;
    const dgram = { spec: "node:dgram", typeOnly: false };
    expect(allowed(ruleFor(bfd, "bfd", "src/bfd/session.ts"), dgram)).toBe(false);
    expect(allowed(ruleFor(bfd, "bfd", "src/bfd/udp.ts"), dgram)).toBe(true);
  });

  for (const folder of folders) {
    const rule = rules[folder];
    if (rule === undefined) continue; // the test above fails for it
    it(`src/${folder} ${rule.says}`, () => {
      expect(violations(folder, rule)).toEqual([]);
    });
  }
});
