// Reading kubeconfig files the way kubectl does: every file of $KUBECONFIG is merged (the
// first file to define a cluster, user or context name wins, and so does the first
// current-context), and relative file paths in a file resolve against that file's folder.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { load as loadYaml } from "js-yaml";
import type { ApiConfig } from "./client.ts";

interface ClusterEntry {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
}

interface UserEntry {
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  token?: string;
  tokenFile?: string;
  exec?: unknown;
  "auth-provider"?: unknown;
}

interface ContextEntry {
  cluster: string;
  user: string;
}

interface KubeconfigFile {
  "current-context"?: string;
  contexts?: { name: string; context: ContextEntry }[] | null;
  clusters?: { name: string; cluster: ClusterEntry }[] | null;
  users?: { name: string; user: UserEntry }[] | null;
}

/** Several kubeconfig files merged: each entry remembers the file it came from. */
interface MergedKubeconfig {
  currentContext?: string;
  contexts: Map<string, { entry: ContextEntry; file: string }>;
  clusters: Map<string, { entry: ClusterEntry; file: string }>;
  users: Map<string, { entry: UserEntry; file: string }>;
}

/** Splits $KUBECONFIG as kubectl does (":" on Linux), dropping empty entries and repeats. */
export function kubeconfigPaths(env: string | undefined): string[] {
  return [...new Set((env ?? "").split(":").filter((p) => p !== ""))];
}

/**
 * Merges kubeconfig texts in order (kubectl's rules: the first file that sets a value
 * wins); relative paths are made absolute against each file's own folder first.
 */
function mergeKubeconfigs(files: { text: string; file: string }[]): MergedKubeconfig {
  const merged: MergedKubeconfig = { contexts: new Map(), clusters: new Map(), users: new Map() };
  for (const { text, file } of files) {
    let kc: KubeconfigFile;
    try {
      kc = (loadYaml(text) ?? {}) as KubeconfigFile;
    } catch (err) {
      throw new Error(`kubeconfig ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof kc !== "object") throw new Error(`kubeconfig ${file} is not a YAML mapping`);
    const dir = dirname(resolve(file));
    const abs = (p: string | undefined) => (p && !isAbsolute(p) ? resolve(dir, p) : p);
    if (!merged.currentContext && kc["current-context"])
      merged.currentContext = kc["current-context"];
    for (const c of kc.contexts ?? [])
      if (c?.name && !merged.contexts.has(c.name))
        merged.contexts.set(c.name, { entry: c.context, file });
    for (const c of kc.clusters ?? []) {
      if (!c?.name || merged.clusters.has(c.name)) continue;
      const e = { ...c.cluster };
      e["certificate-authority"] = abs(e["certificate-authority"]);
      merged.clusters.set(c.name, { entry: e, file });
    }
    for (const u of kc.users ?? []) {
      if (!u?.name || merged.users.has(u.name)) continue;
      const e = { ...u.user };
      e["client-certificate"] = abs(e["client-certificate"]);
      e["client-key"] = abs(e["client-key"]);
      e.tokenFile = abs(e.tokenFile);
      merged.users.set(u.name, { entry: e, file });
    }
  }
  return merged;
}

/** The current context of merged kubeconfigs as an ApiConfig (files are read here). */
function apiConfigOf(kc: MergedKubeconfig, what: string): ApiConfig {
  const ctxName = kc.currentContext;
  const ctx = ctxName === undefined ? undefined : kc.contexts.get(ctxName)?.entry;
  if (!ctx) throw new Error(`kubeconfig ${what}: current-context "${ctxName ?? ""}" not found`);
  const cluster = kc.clusters.get(ctx.cluster)?.entry;
  if (!cluster?.server)
    throw new Error(`kubeconfig ${what}: cluster "${ctx.cluster}" has no server`);
  const user = kc.users.get(ctx.user)?.entry ?? {};
  if (user.exec || user["auth-provider"]) {
    throw new Error(
      `kubeconfig ${what}: user "${ctx.user}" uses an exec/auth-provider plugin, which ironlb does not run; use a token or client certificate`,
    );
  }
  const dataOrFile = (data?: string, path?: string) => {
    if (data) return Buffer.from(data, "base64");
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`kubeconfig ${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const cfg: ApiConfig = {
    server: cluster.server,
    ca: dataOrFile(cluster["certificate-authority-data"], cluster["certificate-authority"]),
    cert: dataOrFile(user["client-certificate-data"], user["client-certificate"]),
    key: dataOrFile(user["client-key-data"], user["client-key"]),
    insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] === true,
  };
  if (user.token) {
    const t = user.token;
    cfg.token = () => t;
  } else if (user.tokenFile) {
    cfg.token = cachedFileToken(user.tokenFile);
  }
  return cfg;
}

/** Parses one kubeconfig's current context into an ApiConfig; `file` anchors relative paths. */
export function fromKubeconfig(text: string, file: string): ApiConfig {
  return apiConfigOf(mergeKubeconfigs([{ text, file }]), file);
}

/**
 * The ApiConfig of an explicit kubeconfig file, or of every existing file listed in
 * `$KUBECONFIG` merged; undefined when there is none to read (then the caller tries
 * ~/.kube/config or the in-cluster ServiceAccount).
 */
export function loadKubeconfigs(paths: string[]): ApiConfig | undefined {
  const files: { text: string; file: string }[] = [];
  for (const file of paths) {
    try {
      files.push({ text: readFileSync(file, "utf8"), file });
    } catch (err) {
      // kubectl skips listed files that do not exist; anything else is worth saying.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        throw new Error(`cannot read kubeconfig ${file}: ${(err as Error).message}`);
    }
  }
  if (files.length === 0) return undefined;
  return apiConfigOf(mergeKubeconfigs(files), files.map((f) => f.file).join(":"));
}

/** Reads a token file at most once a minute: ServiceAccount tokens are rotated in place. */
export function cachedFileToken(file: string, now: () => number = Date.now): () => string {
  let value = "";
  let readAt = Number.NEGATIVE_INFINITY;
  return () => {
    if (now() - readAt > 60_000) {
      value = readFileSync(file, "utf8").trim();
      readAt = now();
    }
    return value;
  };
}
