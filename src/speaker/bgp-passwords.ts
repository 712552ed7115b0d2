// The TCP-MD5 passwords of BGPPeers (spec.passwordSecret): a kubernetes.io/basic-auth
// Secret, key `password`, in the speaker's own namespace (RBAC lets it read Secrets there
// only). What a Secret yields is a pure function (table-tested); the edge below asks the
// apiserver for a Secret the first time a peer names it, then watches the basic-auth
// Secrets of that namespace, and asks again (every 10 s while a peer names it) about one
// the watch does not show, to tell a missing Secret from one of another type. A password that cannot be read keeps the peer's session from
// connecting (the reason goes to its status and an Event): sending no key to a router that
// expects one would only time out.
import type { KubernetesObject } from "@kubernetes/client-node";
import { passwordSecretKey, passwordSecretType, type SecretReference } from "../api/bgppeer.ts";
import { MD5_MAX_KEY_BYTES } from "../bgp/peer-config.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import { Informer } from "../k8s/informer.ts";
import type { Logger } from "../observability/log.ts";

/** What the speaker keeps of a Secret. */
export type SecretLike = KubernetesObject & { type?: string; data?: Record<string, string> };

/** A peer's password, or why there is none; both absent: the peer sets no passwordSecret. */
export interface PasswordResult {
  password?: string;
  error?: string;
  /** The Secret is being read: no connecting yet, but nothing to warn about either. */
  pending?: boolean;
}

/** `ns/name` of the Secret a reference means. */
export function secretPath(ref: SecretReference, speakerNamespace: string): string {
  return `${ref.namespace ?? speakerNamespace}/${ref.name}`;
}

/**
 * The password `secret` holds for `ref` (undefined: no such Secret). Pure: every way a
 * Secret can be unusable becomes a sentence naming it.
 */
export function passwordFromSecret(
  ref: SecretReference | undefined,
  speakerNamespace: string,
  secret: SecretLike | undefined,
): PasswordResult {
  if (ref === undefined) return {};
  const where = `passwordSecret ${secretPath(ref, speakerNamespace)}`;
  if (ref.namespace !== undefined && ref.namespace !== speakerNamespace) {
    return {
      error: `${where}: the speakers read Secrets only in ironlb's namespace ${speakerNamespace}; create the Secret there`,
    };
  }
  if (secret === undefined) return { error: `${where}: no such Secret` };
  if (secret.type !== passwordSecretType) {
    return {
      error: `${where}: the Secret is of type ${secret.type ?? "Opaque"}; it must be ${passwordSecretType}`,
    };
  }
  const b64 = secret.data?.[passwordSecretKey];
  if (b64 === undefined) return { error: `${where}: the Secret has no key "${passwordSecretKey}"` };
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length === 0 || bytes.length > MD5_MAX_KEY_BYTES) {
    return {
      error: `${where}: the password has ${bytes.length} bytes; TCP-MD5 allows 1 to ${MD5_MAX_KEY_BYTES}`,
    };
  }
  const text = bytes.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(bytes)) {
    return { error: `${where}: the password is not UTF-8 text` };
  }
  return { password: text };
}

/**
 * A GET of a Secret the watch does not show: its answer stays this long, then the peers
 * are evaluated again (and it is asked again), since the watch does not see a Secret of
 * another type come or go.
 */
const PROBE_TTL_MS = 10_000;

interface Probe {
  at: number;
  inFlight: boolean;
  /** Undefined: not found (or not asked yet). */
  secret?: SecretLike;
  /** The GET failed otherwise than 404. */
  error?: string;
}

/** Keeps what the Secret informer caches small: the password key only, no other data. */
function slimSecret(s: SecretLike): SecretLike {
  const password = s.data?.[passwordSecretKey];
  return {
    metadata: {
      name: s.metadata?.name,
      namespace: s.metadata?.namespace,
      resourceVersion: s.metadata?.resourceVersion,
    },
    ...(s.type === undefined ? {} : { type: s.type }),
    ...(password === undefined ? {} : { data: { [passwordSecretKey]: password } }),
  };
}

/** The BGPPeers' password Secrets, read on demand and watched for changes. */
export class PasswordSecrets {
  readonly #api: KubeClient;
  readonly #ns: string;
  readonly #log: Logger;
  readonly #onChange: () => void;
  #informer: Informer<SecretLike> | undefined;
  #synced = false;
  readonly #probes = new Map<string, Probe>();
  #stopped = false;
  #recheck: NodeJS.Timeout | undefined;

  constructor(api: KubeClient, namespace: string, log: Logger, onChange: () => void) {
    this.#api = api;
    this.#ns = namespace;
    this.#log = log;
    this.#onChange = onChange;
  }

  /** The password for `ref` as known now; a change later calls onChange. */
  resolve(ref: SecretReference | undefined): PasswordResult {
    if (ref === undefined) return {};
    if (ref.namespace !== undefined && ref.namespace !== this.#ns) {
      return passwordFromSecret(ref, this.#ns, undefined);
    }
    const cached = this.#synced ? this.#informer?.get(ref.name, this.#ns) : undefined;
    if (cached !== undefined) return passwordFromSecret(ref, this.#ns, cached);
    // Not among the basic-auth Secrets (or not listed yet): ask for it by name.
    const p = this.#probe(ref.name);
    if (p.error !== undefined) {
      return { error: `passwordSecret ${secretPath(ref, this.#ns)}: ${p.error}` };
    }
    if (p.inFlight && p.at === 0) {
      return {
        error: `passwordSecret ${secretPath(ref, this.#ns)}: reading the Secret`,
        pending: true,
      };
    }
    return passwordFromSecret(ref, this.#ns, p.secret);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#recheck);
    await this.#informer?.stop();
  }

  #watch(): void {
    if (this.#informer !== undefined || this.#stopped) return;
    const changed = () => this.#onChange();
    // Only basic-auth Secrets: the namespace's others (Helm's release records) are large
    // and none of the speaker's business.
    this.#informer = new Informer<SecretLike>(
      this.#api,
      `/api/v1/namespaces/${this.#ns}/secrets`,
      { add: changed, update: changed, delete: changed },
      this.#log,
      { fieldSelector: `type=${passwordSecretType}` },
      { transform: slimSecret },
    );
    const inf = this.#informer;
    void inf
      .start()
      .then(() => inf.synced())
      .then(() => {
        this.#synced = true;
        this.#probes.clear();
        changed();
      });
  }

  #probe(name: string): Probe {
    let p = this.#probes.get(name);
    const now = performance.now();
    if (p !== undefined && (p.inFlight || now - p.at < PROBE_TTL_MS)) return p;
    const fresh: Probe = { at: p?.at ?? 0, inFlight: true, secret: p?.secret, error: p?.error };
    p = fresh;
    this.#probes.set(name, p);
    this.#api.get<SecretLike>(`/api/v1/namespaces/${this.#ns}/secrets/${name}`).then(
      (s) => this.#probed(name, fresh, { secret: slimSecret(s) }),
      (err: unknown) => {
        const status = httpStatus(err);
        if (status === 404) this.#probed(name, fresh, {});
        else
          this.#probed(name, fresh, {
            forbidden: status === 403,
            error:
              status === 403
                ? `the speaker may not read Secrets in ${this.#ns} (its RBAC Role lacks get/list/watch on secrets: upgrade the chart)`
                : `cannot read the Secret: ${describeError(err)}`,
          });
      },
    );
    return p;
  }

  #probed(
    name: string,
    p: Probe,
    r: { secret?: SecretLike; error?: string; forbidden?: boolean },
  ): void {
    if (this.#probes.get(name) !== p || this.#stopped) return;
    p.inFlight = false;
    p.at = performance.now();
    p.secret = r.secret;
    p.error = r.error;
    // The watch starts after the first answer that is not a refusal: a speaker without the
    // RBAC to read Secrets (an older chart's Role) keeps no watch that can never progress,
    // which its health check would count as stalled.
    if (!r.forbidden) this.#watch();
    if (r.error !== undefined)
      this.#log.warn({ secret: name, err: r.error }, "cannot read a BGP password Secret");
    // Asked again when stale, if a peer still names it (resolve is called for those only).
    if (this.#recheck === undefined) {
      this.#recheck = setTimeout(() => {
        this.#recheck = undefined;
        if (!this.#stopped) this.#onChange();
      }, PROBE_TTL_MS + 100);
      this.#recheck.unref();
    }
    this.#onChange();
  }
}
