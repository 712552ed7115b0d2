// The controller: keeps every LoadBalancer Service it owns supplied with the right external
// IPs. Informers feed a keyed work queue; each reconcile asks the allocator (pure, in
// memory) and writes the Service status, Events and the pool statuses. On start it first
// rebuilds the allocator from the IPs already in Service statuses, so a restart or a leader
// handover never moves an IP that is still legal.
import type { KubernetesObject, V1Namespace, V1Service } from "@kubernetes/client-node";
import { Allocator } from "../allocator/allocator.ts";
import type { AllocationResult, PoolReport, ServiceRequest } from "../allocator/types.ts";
import { group, version } from "../api/group.ts";
import type { IPAddressPool } from "../api/ipaddresspool.ts";
import {
  ANNOTATIONS,
  type ClassFilter,
  isOurs,
  METALLB_PREFIXES,
  statusIPs,
} from "../api/service.ts";
import { ALLOCATED_CONDITION, keyOf, PATHS, servicePath } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus, timestamp } from "../k8s/errors.ts";
import { EventRecorder, type EventTarget, serviceTarget } from "../k8s/events.ts";
import { Informer } from "../k8s/informer.ts";
import type { Logger } from "../observability/log.ts";
import { AnnounceConditions, type AnnounceOptions } from "./announce-conditions.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { judgeOrphan } from "./orphans.ts";
import {
  desiredPoolStatus,
  type LastGood,
  type PoolAsk,
  type PoolInput,
  poolStatusChanged,
  toPoolInput,
} from "./pools.ts";
import { translateService } from "./service-request.ts";
import { slimNamespace, slimService } from "./slim.ts";
import { WorkQueue } from "./workqueue.ts";

/** Longest message put in a condition or an Event (events.k8s.io caps its note at 1 KiB). */
const MESSAGE_LIMIT = 1024;

function capped(message: string): string {
  return message.length <= MESSAGE_LIMIT ? message : `${message.slice(0, MESSAGE_LIMIT - 1)}…`;
}

export interface ControllerOptions extends ClassFilter {
  /** `status.loadBalancer.ingress[].ipMode`: VIP lets kube-proxy handle the IP itself (default). */
  ipMode: "VIP" | "Proxy";
  /** Parallel API writes (default 16). */
  concurrency: number;
  /** The name Events are reported under (pod name). */
  instance: string;
  /** Keep each Service's ironlb.dev/Announceable condition (announce-conditions.ts). */
  announce?: AnnounceOptions;
}

interface ServiceCondition {
  type: string;
  status: "True" | "False";
  reason: string;
  message: string;
  lastTransitionTime?: string | Date;
  observedGeneration?: number;
}

/** Reconciles Services and pools; start() after winning the election, stop() on shutdown. */
export class Controller {
  readonly #api: KubeClient;
  readonly #opts: ControllerOptions;
  readonly #log: Logger;
  readonly #metrics: ControllerMetrics;
  readonly #events: EventRecorder;
  readonly #alloc = new Allocator();
  readonly #services: Informer<V1Service>;
  readonly #pools: Informer<IPAddressPool & KubernetesObject>;
  readonly #namespaces: Informer<V1Namespace>;
  readonly #queue: WorkQueue;
  /** Services waiting for capacity: retried whenever addresses free up or pools change. */
  readonly #pending = new Set<string>();
  /**
   * What the last successful write put on each Service and the resourceVersion it replaced,
   * to skip re-writes while the cache still shows that version.
   */
  readonly #written = new Map<string, { from: string; fingerprint: string }>();
  /**
   * Configuration problems already reported by Event, per Service: each distinct problem is
   * reported once, not on every reconcile (our own status writes cause reconciles too).
   */
  readonly #reported = new Map<string, { uid: string; problems: Set<string> }>();
  /** Pools named by Services, with the families those Services require (pool Ready). */
  readonly #asks = new Map<string, PoolAsk & { pool: string }>();
  /** The warnings last reported for each pool (uid and text), so each is reported once. */
  readonly #poolWarned = new Map<string, string>();
  /** What was last said about each pool's readability (ignored fields, errors), said once. */
  readonly #poolReadSaid = new Map<string, string>();
  /** The last spec read from each pool object: a pool that becomes unreadable freezes on it. */
  readonly #lastGood = new Map<string, LastGood>();
  #poolInputs = new Map<string, PoolInput>();
  /**
   * Services whose status IPs lay in no pool this controller knew when it started, and
   * whose pool does not exist: their IPs are held (kept, unannounced) until a pool holds
   * them (src/controller/orphans.ts says why).
   */
  readonly #orphans = new Map<string, string[]>();
  #poolsDirty = false;
  #poolsFingerprint = "";
  #poolStatusTimer: NodeJS.Timeout | undefined;
  #bootstrapped = false;
  #stopped = false;
  /**
   * The cold start: Services that existed when the controller started and have not been
   * reconciled yet. Past the first STARTUP_OWN_EVENTS of them, their IPAllocated Events are
   * folded into one Event per pool (`folded`), written when the start-up queue has drained:
   * at 10,000 Services one Event each would double the API writes of the cold start.
   */
  #startup: { keys: Set<string>; own: number; folded: Map<string, string[]> } | undefined;
  /**
   * With debug logs: when the watch event that queued a Service arrived (epoch ms), kept
   * until its reconcile writes, for the "status written" trace (bench/controller-main.ts).
   */
  readonly #eventAt = new Map<string, number>();
  readonly #reconcileEventAt = new Map<string, number>();
  readonly #trace: boolean;
  readonly #announce: AnnounceConditions | undefined;

  constructor(api: KubeClient, opts: ControllerOptions, log: Logger, metrics: ControllerMetrics) {
    this.#api = api;
    this.#opts = opts;
    this.#log = log;
    this.#metrics = metrics;
    this.#events = new EventRecorder(api, "controller", opts.instance, log);
    this.#trace = log.isLevelEnabled("debug");
    this.#queue = new WorkQueue(
      async (key) => {
        const end = metrics.reconcile.startTimer();
        if (this.#trace) {
          const at = this.#eventAt.get(key);
          this.#eventAt.delete(key);
          if (at !== undefined) this.#reconcileEventAt.set(key, at);
        }
        try {
          await this.reconcile(key);
          this.#queue.forget(key);
        } finally {
          end();
          this.#reconcileEventAt.delete(key);
        }
      },
      opts.concurrency,
      (key, err) => {
        // 409: our cache was behind the server; the retry sees the newer object.
        const level = httpStatus(err) === 409 ? "debug" : "warn";
        this.#log[level]({ service: key, err: describeError(err) }, "reconcile failed; retrying");
        this.#queue.retry(key);
      },
    );
    this.#services = new Informer<V1Service>(
      api,
      PATHS.services,
      {
        add: (s) => this.#serviceChanged(s),
        update: (s) => this.#serviceChanged(s),
        delete: (s) => this.#serviceChanged(s),
      },
      log,
      {},
      { transform: slimService },
    );
    this.#pools = new Informer<IPAddressPool & KubernetesObject>(
      api,
      PATHS.ipAddressPools,
      {
        add: () => this.#poolsChanged(),
        update: () => this.#poolsChanged(),
        delete: () => this.#poolsChanged(),
      },
      log,
    );
    this.#namespaces = new Informer<V1Namespace>(
      api,
      PATHS.namespaces,
      { add: (n) => this.#namespaceChanged(n), update: (n) => this.#namespaceChanged(n) },
      log,
      {},
      { transform: slimNamespace },
    );
    this.#announce =
      opts.announce &&
      new AnnounceConditions(
        api,
        opts.announce,
        {
          services: () => this.#services.list().filter((s) => isOurs(s, this.#opts)),
          service: (key) => {
            const slash = key.indexOf("/");
            const s = this.#services.get(key.slice(slash + 1), key.slice(0, slash));
            return s && isOurs(s, this.#opts) ? s : undefined;
          },
          pools: () => this.#pools.list(),
          events: this.#events,
        },
        log,
      );
  }

  /** True once start-up has rebuilt the allocator and the queue is running. */
  get ready(): boolean {
    return this.#bootstrapped;
  }

  /** Lists and watches, rebuilds state from existing statuses, then starts reconciling. */
  async start(): Promise<void> {
    await Promise.all([this.#services.start(), this.#pools.start(), this.#namespaces.start()]);
    await Promise.all([this.#services.synced(), this.#pools.synced(), this.#namespaces.synced()]);
    if (this.#stopped) return;
    this.#syncPools();
    this.#restoreFromStatuses();
    this.#bootstrapped = true;
    const keys = this.#services.list().map(keyOf);
    this.#startup = { keys: new Set(keys), own: 0, folded: new Map() };
    for (const key of keys) this.#queue.add(key);
    this.#queue.start();
    // Whichever comes first: the start-up queue drained, or a minute (busy clusters).
    const flush = setTimeout(() => this.#endStartup(), STARTUP_FOLD_MS);
    flush.unref();
    void this.#queue.idle().then(() => {
      clearTimeout(flush);
      this.#endStartup();
    });
    this.#schedulePoolStatus();
    this.#announce?.start().catch((err: unknown) => {
      this.#log.warn({ err: describeError(err) }, "cannot keep the Announceable condition");
    });
    this.#log.info(
      { services: this.#services.list().length, pools: this.#pools.list().length },
      "controller started",
    );
  }

  /** Writes the per-pool Events that stand for the folded start-up IPAllocated Events. */
  #endStartup(): void {
    const st = this.#startup;
    if (!st) return;
    this.#startup = undefined;
    if (this.#stopped) return;
    for (const [pool, services] of st.folded) {
      const named = services.slice(0, STARTUP_NAMED);
      const more = services.length - named.length;
      const message = capped(
        `Assigned IPs to ${services.length} more Services at controller start-up; each Service's ironlb.dev/IPAllocated condition and status say which IP: ${named.join(", ")}${more > 0 ? ` and ${more} more` : ""}`,
      );
      this.#log.info(
        { pool, services: services.length },
        "start-up allocations summarised in one Event",
      );
      void this.#events.emit(
        poolTarget(this.#pools.get(pool), pool),
        "Normal",
        "IPsAllocated",
        message,
      );
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.pause();
    clearTimeout(this.#poolStatusTimer);
    await Promise.all([
      this.#services.stop(),
      this.#pools.stop(),
      this.#namespaces.stop(),
      this.#announce?.stop(),
    ]);
  }

  /** Resolves when no reconcile is queued or running (tests and benchmarks). */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  #serviceChanged(svc: V1Service): void {
    if (!this.#bootstrapped) return;
    const key = keyOf(svc);
    if (this.#trace && !this.#eventAt.has(key)) this.#eventAt.set(key, epochMs());
    this.#queue.add(key);
    this.#announce?.serviceChanged(svc);
  }

  #namespaceChanged(ns: V1Namespace): void {
    if (!this.#bootstrapped) return;
    // Namespace labels feed pool selectors: re-check that namespace's Services.
    for (const svc of this.#services.list(ns.metadata?.name)) this.#queue.add(keyOf(svc));
  }

  #poolsChanged(): void {
    this.#announce?.poolsChanged();
    if (!this.#bootstrapped || this.#poolsDirty) return;
    this.#poolsDirty = true;
    // Coalesce a burst of pool events (e.g. kubectl apply of several pools) into one pass.
    setImmediate(() => {
      this.#poolsDirty = false;
      if (this.#stopped) return;
      // Our own pool status writes come back as updates too: only spec changes matter.
      if (!this.#syncPools()) return;
      this.#adoptOrphans();
      for (const key of this.#alloc.invalidated()) {
        this.#log.info({ service: key }, "pools changed: service's IPs must be checked again");
        this.#queue.add(key);
      }
      this.#retryPending();
      this.#schedulePoolStatus();
    });
  }

  /**
   * Hands the current pools to the allocator when their specs changed (returns true);
   * the Services that lost their IPs are then in the allocator's invalidated().
   */
  #syncPools(): boolean {
    const inputs = this.#pools
      .list()
      .map((p) => toPoolInput(p, this.#lastGood.get(p.metadata?.name ?? "")));
    this.#poolInputs = new Map(inputs.map((p) => [p.name, p]));
    for (const name of this.#lastGood.keys())
      if (!this.#poolInputs.has(name)) this.#lastGood.delete(name);
    for (const p of inputs) {
      if (p.errors.length === 0 && p.spec && p.uid !== undefined)
        this.#lastGood.set(p.name, { uid: p.uid, spec: p.spec });
      this.#sayPoolReadability(p);
    }
    const specs = inputs.flatMap((p) => (p.spec ? [p.spec] : []));
    const fingerprint = JSON.stringify(specs);
    if (fingerprint === this.#poolsFingerprint) return false;
    this.#poolsFingerprint = fingerprint;
    const reports = this.#alloc.setPools(specs);
    for (const r of reports) {
      const uid = this.#pools.get(r.name)?.metadata?.uid ?? "";
      const said = r.warnings.length > 0 ? `${uid}|${r.warnings.join("|")}` : "";
      if (said === (this.#poolWarned.get(r.name) ?? "")) continue;
      if (said === "") {
        this.#poolWarned.delete(r.name);
        continue;
      }
      this.#poolWarned.set(r.name, said);
      const message = `pool ${r.name} ${r.warnings.join("; it ")}`;
      this.#log.warn({ pool: r.name, warnings: r.warnings }, "pool holds suspicious addresses");
      void this.#events.emit(
        poolTarget(this.#pools.get(r.name), r.name),
        "Warning",
        "SuspiciousAddresses",
        message,
      );
    }
    return true;
  }

  /**
   * Says once per pool object and problem (log line and Warning Event) that fields were
   * ignored, or that the pool cannot be read and is frozen; and when it is readable again.
   */
  #sayPoolReadability(p: PoolInput): void {
    const said = this.#poolReadSaid.get(p.name) ?? "";
    const now =
      p.errors.length > 0 || p.ignored.length > 0
        ? JSON.stringify([p.uid, p.errors, p.ignored])
        : "";
    if (now === said) return;
    if (now === "") this.#poolReadSaid.delete(p.name);
    else this.#poolReadSaid.set(p.name, now);
    const target = poolTarget(this.#pools.get(p.name), p.name);
    if (p.errors.length > 0) {
      const keeps = p.spec
        ? "Services keep the IPs they have from it; it gives no new ones until it can be read"
        : "nothing of it could be salvaged: its Services lose their IPs from it";
      this.#log.warn(
        { pool: p.name, errors: p.errors },
        p.spec ? "pool cannot be read; frozen" : "pool cannot be read and nothing salvaged",
      );
      void this.#events.emit(
        target,
        "Warning",
        "PoolFrozen",
        capped(`This controller cannot read the pool (${p.errors.join("; ")}): ${keeps}`),
      );
    } else if (said !== "" && JSON.parse(said)[1].length > 0) {
      this.#log.info({ pool: p.name }, "pool can be read again; no longer frozen");
    }
    if (p.ignored.length > 0) {
      this.#log.warn(
        { pool: p.name, fields: p.ignored },
        "pool has fields this controller does not know; they are ignored",
      );
      void this.#events.emit(
        target,
        "Warning",
        "UnknownFields",
        capped(
          `This controller ignores fields it does not know (a newer CRD or writer?): ${p.ignored.join(", ")}`,
        ),
      );
    }
  }

  /** Re-registers every IP already published in a Service status before anything new is assigned. */
  #restoreFromStatuses(): void {
    const withIPs = this.#services
      .list()
      .filter((s) => isOurs(s, this.#opts) && statusIPs(s).length > 0)
      // The oldest Service keeps a contested IP.
      .sort(
        (a, b) =>
          timestamp(a.metadata?.creationTimestamp).localeCompare(
            timestamp(b.metadata?.creationTimestamp),
          ) || keyOf(a).localeCompare(keyOf(b)),
      );
    let restored = 0;
    for (const svc of withIPs) {
      const key = keyOf(svc);
      const request = this.#restorableRequest(svc);
      if (!request) continue;
      const r = this.#restore(request, statusIPs(svc));
      if (r.ok) restored++;
      else if (this.#orphanVerdict(svc, request, r) === "hold") {
        this.#orphans.set(key, statusIPs(svc));
        this.#log.warn(
          { service: key, ips: statusIPs(svc), pool: allocatedFrom(svc) },
          "IP lies in no pool this controller knows; held, not announced, until a pool holds it",
        );
      } else {
        this.#log.warn(
          { service: key, ips: statusIPs(svc), reason: r.reason, detail: r.message },
          "existing IP cannot be kept",
        );
        // The reconcile that follows may give another IP with a plain IPAllocated Event:
        // say here why the old one went (e.g. sharing across namespaces now refused).
        void this.#events.emit(
          serviceTarget(svc),
          "Warning",
          "IPNotKept",
          capped(`${statusIPs(svc).join(", ")} cannot be kept: ${r.reason}: ${r.message}`),
        );
      }
    }
    this.#log.info(
      { restored, held: this.#orphans.size, candidates: withIPs.length },
      "restored assignments from service statuses",
    );
  }

  /** The request a Service's status IPs are restored under; undefined if it has none. */
  #restorableRequest(svc: V1Service): ServiceRequest | undefined {
    const nsLabels = this.#namespaces.get(svc.metadata?.namespace ?? "")?.metadata?.labels ?? {};
    let t = translateService(svc, nsLabels);
    // A Service whose annotations are now invalid keeps its IP: restore it as if unannotated.
    if (!t.ok) t = translateService(withoutAnnotations(svc), nsLabels);
    return t.ok ? t.request : undefined;
  }

  #restore(request: ServiceRequest, ips: string[]): AllocationResult {
    const r = this.#alloc.restore(request, ips);
    // An impossible request (a pool that does not exist, another pool than the IP's) keeps
    // the IP too: restore it as not asked for, and let the reconcile say what is wrong.
    if (!r.ok && request.pool !== undefined)
      return this.#alloc.restore({ ...request, pool: undefined }, ips);
    return r;
  }

  #orphanVerdict(svc: V1Service, request: ServiceRequest, restore: AllocationResult) {
    return judgeOrphan({
      restore,
      allocatedFrom: allocatedFrom(svc),
      requestedPool: request.pool,
      poolExists: (name) => this.#poolInputs.has(name),
    });
  }

  /**
   * After a pool change: held IPs that a pool now holds become ordinary assignments before
   * any waiting Service is retried, so none of them can take a held address first.
   */
  #adoptOrphans(): void {
    for (const [key, ips] of this.#orphans) {
      const [ns, name] = splitKey(key);
      const svc = this.#services.get(name, ns);
      const request = svc && this.#restorableRequest(svc);
      if (request && this.#tryAdopt(key, request, ips).ok) this.#queue.add(key);
    }
  }

  /**
   * Restores a held Service's IPs under its request; when a pool holds them now, the hold
   * ends and they are its ordinary assignment. Returns the allocator's answer.
   */
  #tryAdopt(key: string, request: ServiceRequest, ips: string[]): AllocationResult {
    const r = this.#restore(request, ips);
    if (r.ok) {
      this.#orphans.delete(key);
      this.#log.info({ service: key, ips }, "held IP adopted: a pool holds it now");
    }
    return r;
  }

  /**
   * A held Service's reconcile: true when it stays held (status kept, condition says why);
   * false when the ordinary reconcile should go on (adopted, or released).
   */
  async #stillHeld(key: string, svc: V1Service, request: ServiceRequest): Promise<boolean> {
    const ips = this.#orphans.get(key);
    if (!ips) return false;
    // Somebody else rewrote the status: there is nothing of ours to hold any more.
    if (statusIPs(svc).join(",") !== ips.join(",")) {
      this.#orphans.delete(key);
      return false;
    }
    const restore = this.#tryAdopt(key, request, ips);
    if (restore.ok) return false;
    if (this.#orphanVerdict(svc, request, restore) === "release") {
      this.#orphans.delete(key);
      this.#log.info(
        { service: key, ips },
        "held IP given up: the Service's pool was changed or named",
      );
      return false;
    }
    this.#pending.add(key);
    this.#metrics.failures.inc({ reason: "IPNotInPool" });
    const from = allocatedFrom(svc);
    const message = capped(
      `keeps ${ips.join(", ")}, which no IPAddressPool holds${from ? ` (pool ${from} does not exist)` : ""}: it is not announced until a pool holds it. Create that pool (again) to keep this IP; to give the Service a new IP instead, name an existing pool in ${ANNOTATIONS.addressPool}`,
    );
    const wrote = await this.#write(
      key,
      svc,
      ips,
      svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool],
      { status: "False", reason: "IPNotInAnyPool", message },
    );
    if (wrote) void this.#events.emit(serviceTarget(svc), "Warning", "IPHeld", message);
    return true;
  }

  #retryPending(): void {
    for (const key of this.#pending) this.#queue.add(key);
  }

  /** One reconcile of one Service. Exposed to the work queue only. */
  async reconcile(key: string): Promise<void> {
    const atStartup = this.#startup?.keys.delete(key) ?? false;
    const [ns, name] = splitKey(key);
    const svc = this.#services.get(name, ns);
    if (!svc) {
      this.#written.delete(key);
      this.#pending.delete(key);
      this.#reported.delete(key);
      this.#orphans.delete(key);
      this.#forgetAsk(key);
      if (this.#alloc.get(key)) {
        this.#alloc.release(key);
        this.#log.info({ service: key }, "service deleted; IP released");
        this.#capacityFreed();
      }
      return;
    }
    if (!isOurs(svc, this.#opts)) {
      this.#pending.delete(key);
      this.#reported.delete(key);
      this.#orphans.delete(key);
      this.#forgetAsk(key);
      await this.#releaseNotOurs(key, svc);
      return;
    }
    const nsLabels = this.#namespaces.get(ns)?.metadata?.labels ?? {};
    const t = translateService(svc, nsLabels);
    const fresh = this.#newProblems(key, svc, [
      ...t.warnings.map((w) => ["DeprecatedAnnotation", w] as const),
      ...(t.ok ? [] : [["InvalidConfiguration", capped(t.error)] as const]),
    ]);
    for (const [reason, message] of fresh) {
      void this.#events.emit(serviceTarget(svc), "Warning", reason, message);
    }
    if (t.ok && t.request.pool !== undefined) {
      const families = t.request.families.filter((f) => f.required).map((f) => f.family);
      this.#asks.set(key, { service: key, pool: t.request.pool, families });
    } else {
      this.#forgetAsk(key);
    }
    if (!t.ok) {
      this.#metrics.failures.inc({ reason: "InvalidConfiguration" });
      const orphan = this.#orphans.get(key);
      const held =
        this.#alloc.get(key) ??
        (orphan && {
          ips: orphan,
          pool: svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool],
        });
      if (fresh.length > 0) {
        this.#log.warn({ service: key, error: capped(t.error) }, "invalid service configuration");
      }
      if (held) {
        // Keep what the Service has: a typo in an annotation must not take its IP away.
        await this.#write(key, svc, held.ips, held.pool, {
          status: "True",
          reason: "InvalidConfiguration",
          message: capped(
            `keeps ${held.ips.join(", ")}, but its configuration is invalid: ${t.error}`,
          ),
        });
      } else {
        this.#pending.delete(key);
        await this.#write(key, svc, [], undefined, {
          status: "False",
          reason: "InvalidConfiguration",
          message: capped(t.error),
        });
      }
      return;
    }
    if (await this.#stillHeld(key, svc, t.request)) return;
    const before = this.#alloc.get(key);
    const result: AllocationResult = this.#alloc.assign(t.request);
    if (result.ok) {
      this.#pending.delete(key);
      const changed = !before || before.ips.join(",") !== result.ips.join(",");
      const wrote = await this.#write(key, svc, result.ips, result.pool, {
        status: "True",
        reason: "Allocated",
        message: `assigned ${result.ips.join(", ")} from pool ${result.pool}`,
      });
      if (changed || wrote) {
        if (changed) this.#metrics.allocations.inc();
        if (changed || statusIPs(svc).join(",") !== result.ips.join(",")) {
          const st = atStartup ? this.#startup : undefined;
          if (st && st.own >= STARTUP_OWN_EVENTS) {
            const list = st.folded.get(result.pool) ?? [];
            list.push(key);
            st.folded.set(result.pool, list);
          } else {
            if (st) st.own++;
            // After the status write, never before it: the Event lane is the slow one.
            void this.#events.emit(
              serviceTarget(svc),
              "Normal",
              "IPAllocated",
              `Assigned IP ${result.ips.join(", ")} from pool ${result.pool}`,
            );
          }
          this.#log.info({ service: key, ips: result.ips, pool: result.pool }, "IP allocated");
        }
      }
      if (changed && before) this.#capacityFreed();
      this.#schedulePoolStatus();
      return;
    }
    this.#pending.add(key);
    this.#metrics.failures.inc({ reason: result.reason });
    // An edit that cannot be met keeps the IPs the Service has, where still legal for it;
    // it is retried whenever addresses free up or pools change.
    const kept = before ? this.#alloc.retain(t.request) : undefined;
    if (kept?.ok) {
      const message = capped(
        `keeps ${kept.ips.join(", ")} from pool ${kept.pool}; the requested change cannot be made: ${result.message}`,
      );
      const wrote = await this.#write(key, svc, kept.ips, kept.pool, {
        status: "True",
        reason: result.reason,
        message,
      });
      if (wrote) {
        void this.#events.emit(
          serviceTarget(svc),
          "Warning",
          "AllocationFailed",
          capped(`${result.reason}: ${message}`),
        );
        this.#log.warn(
          { service: key, ips: kept.ips, reason: result.reason, detail: result.message },
          "requested change cannot be made; the Service keeps its IP",
        );
      }
      this.#schedulePoolStatus();
      return;
    }
    // Failed: the Service holds nothing (an IP it had no longer fits its request or pools).
    this.#alloc.release(key);
    const lost = statusIPs(svc);
    const wrote = await this.#write(key, svc, [], undefined, {
      status: "False",
      reason: result.reason,
      message: capped(result.message),
    });
    if (wrote) {
      void this.#events.emit(
        serviceTarget(svc),
        "Warning",
        "AllocationFailed",
        capped(`${result.reason}: ${result.message}`),
      );
      this.#log.warn(
        { service: key, reason: result.reason, detail: result.message },
        "allocation failed",
      );
      if (lost.length > 0) {
        void this.#events.emit(
          serviceTarget(svc),
          "Normal",
          "IPReleased",
          capped(`Released ${lost.join(", ")}: ${result.message}`),
        );
        this.#capacityFreed();
      }
    }
    this.#schedulePoolStatus();
  }

  /**
   * The problems (Event reason and message) not yet reported for this Service; remembers
   * the current set, so a problem that goes away and comes back is reported again.
   */
  #newProblems(
    key: string,
    svc: V1Service,
    problems: readonly (readonly [string, string])[],
  ): (readonly [string, string])[] {
    const uid = svc.metadata?.uid ?? "";
    const prev = this.#reported.get(key);
    const seen = prev?.uid === uid ? prev.problems : new Set<string>();
    const now = new Set(problems.map(([reason, message]) => `${reason}\n${message}`));
    if (now.size === 0) this.#reported.delete(key);
    else this.#reported.set(key, { uid, problems: now });
    return problems.filter(([reason, message]) => !seen.has(`${reason}\n${message}`));
  }

  #forgetAsk(key: string): void {
    if (this.#asks.delete(key)) this.#schedulePoolStatus();
  }

  async #releaseNotOurs(key: string, svc: V1Service): Promise<void> {
    const held = this.#alloc.get(key);
    const annotated = svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool] !== undefined;
    if (!held && !annotated) return;
    this.#alloc.release(key);
    // Clear only what ironlb wrote: the annotation marks a status as ours.
    if (annotated) {
      await this.#write(key, svc, [], undefined, undefined);
      // The API server may already have cleared the status of a Service that left type LoadBalancer.
      const ips = held?.ips ?? statusIPs(svc);
      void this.#events.emit(
        serviceTarget(svc),
        "Normal",
        "IPReleased",
        `Released ${ips.join(", ") || "its IP"}: the Service is no longer a LoadBalancer handled by ironlb`,
      );
    }
    this.#log.info({ service: key }, "service no longer handled by ironlb; IP released");
    this.#capacityFreed();
  }

  #capacityFreed(): void {
    this.#retryPending();
    this.#schedulePoolStatus();
  }

  /**
   * Brings the Service's status (ingress, condition) and pool annotation to the desired
   * state; returns false when nothing had to change. A stale cache gives 409: retried.
   */
  async #write(
    key: string,
    svc: V1Service,
    ips: string[],
    pool: string | undefined,
    cond: Omit<ServiceCondition, "type"> | undefined,
  ): Promise<boolean> {
    const ingress = ips.map((ip) => ({ ip, ipMode: this.#opts.ipMode }));
    const curIngress = (svc.status?.loadBalancer?.ingress ?? []).map((i) => ({
      ip: i.ip,
      ipMode: i.ipMode ?? "VIP",
    }));
    const curConds = (svc.status?.conditions ?? []) as ServiceCondition[];
    const curCond = curConds.find((c) => c.type === ALLOCATED_CONDITION);
    const curPool = svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool];
    const wantPool = pool ?? null;
    const ingressSame = JSON.stringify(curIngress) === JSON.stringify(ingress);
    const condSame = cond
      ? curCond?.status === cond.status &&
        curCond.reason === cond.reason &&
        curCond.message === cond.message
      : curCond === undefined;
    const poolSame = (curPool ?? null) === wantPool;
    const fingerprint = JSON.stringify([ingress, cond, wantPool]);
    if (ingressSame && condSame && poolSame) {
      this.#written.delete(key);
      return false;
    }
    // Our own last write may not have reached the cache yet: the cache then still shows
    // the version that write replaced. resourceVersions are opaque (only equality means
    // anything); the write was guarded by that version, so the next version is ours.
    const last = this.#written.get(key);
    const rv = svc.metadata?.resourceVersion;
    if (last && last.fingerprint === fingerprint && rv !== undefined && rv === last.from)
      return false;

    let conditions = curConds.filter((c) => c.type !== ALLOCATED_CONDITION);
    if (cond) {
      const since =
        curCond && curCond.status === cond.status
          ? curCond.lastTransitionTime
          : new Date().toISOString();
      conditions = [
        ...conditions,
        {
          type: ALLOCATED_CONDITION,
          ...cond,
          lastTransitionTime: since,
          observedGeneration: svc.metadata?.generation,
        },
      ];
    }
    // The status subresource of a Service also takes metadata: one write sets the pool
    // annotation, the ingress and the condition together, guarded by resourceVersion.
    const body = {
      metadata: {
        resourceVersion: svc.metadata?.resourceVersion,
        ...(poolSame ? {} : { annotations: { [ANNOTATIONS.allocatedFromPool]: wantPool } }),
      },
      // null, not {}: a merge patch only removes what it sets to null.
      status: { loadBalancer: { ingress: ingress.length > 0 ? ingress : null }, conditions },
    };
    try {
      const sentAt = this.#trace ? epochMs() : 0;
      const updated = await this.#api.mergePatch<V1Service>(
        `${servicePath(svc.metadata!.namespace, svc.metadata!.name)}/status`,
        body,
      );
      if (this.#trace)
        this.#log.debug(
          { service: key, eventAt: this.#reconcileEventAt.get(key), sentAt, answeredAt: epochMs() },
          "status written",
        );
      if (rv !== undefined && updated.metadata?.resourceVersion !== rv)
        this.#written.set(key, { from: rv, fingerprint });
      return true;
    } catch (err) {
      if (httpStatus(err) === 404) return false; // deleted meanwhile: the delete event follows
      throw err;
    }
  }

  #schedulePoolStatus(): void {
    if (this.#poolStatusTimer || this.#stopped) return;
    // Pool status is a summary: at most a few writes per second, however busy Services are.
    this.#poolStatusTimer = setTimeout(() => {
      this.#poolStatusTimer = undefined;
      void this.#writePoolStatuses();
    }, 300);
  }

  async #writePoolStatuses(): Promise<void> {
    const reports = new Map<string, PoolReport>(this.#alloc.reports().map((r) => [r.name, r]));
    const asksByPool = new Map<string, PoolAsk[]>();
    for (const a of this.#asks.values()) {
      const list = asksByPool.get(a.pool) ?? [];
      list.push(a);
      asksByPool.set(a.pool, list);
    }
    for (const input of this.#poolInputs.values()) {
      const report = reports.get(input.name);
      for (const family of ["IPv4", "IPv6"] as const) {
        const v4 = family === "IPv4";
        this.#metrics.poolInUse.set(
          { pool: input.name, family },
          (v4 ? report?.assignedIPv4 : report?.assignedIPv6) ?? 0,
        );
        this.#metrics.poolAddresses.set(
          { pool: input.name, family },
          ((v4 ? report?.assignedIPv4 : report?.assignedIPv6) ?? 0) +
            ((v4 ? report?.availableIPv4 : report?.availableIPv6) ?? 0),
        );
      }
      const live = this.#pools.get(input.name) as IPAddressPool | undefined;
      const desired = desiredPoolStatus(
        { ...input, current: live?.status },
        report,
        asksByPool.get(input.name),
      );
      if (!poolStatusChanged(live?.status, desired)) continue;
      try {
        await this.#api.mergePatch(`${PATHS.ipAddressPools}/${input.name}/status`, {
          status: desired,
        });
        const prevConflict = live?.status?.conditions?.find((c) => c.type === "Conflict")?.status;
        const conflict = desired.conditions.find((c) => c.type === "Conflict")!;
        if (conflict.status === "True" && prevConflict !== "True") {
          void this.#events.emit(
            poolTarget(live, input.name),
            "Warning",
            "PoolOverlap",
            conflict.message,
          );
        }
      } catch (err) {
        if (httpStatus(err) !== 404) {
          this.#log.warn(
            { pool: input.name, err: describeError(err) },
            "could not update pool status",
          );
          this.#schedulePoolStatus();
        }
      }
    }
  }
}

/** Start-up allocations that still get an IPAllocated Event of their own. */
const STARTUP_OWN_EVENTS = 50;
/** Services named in a pool's start-up summary Event. */
const STARTUP_NAMED = 20;
/** The longest start-up allocations are folded for. */
const STARTUP_FOLD_MS = 60_000;

/** Wall-clock milliseconds with sub-millisecond precision (traces compared across processes). */
function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf("/");
  return [key.slice(0, i), key.slice(i + 1)];
}

function poolTarget(pool: IPAddressPool | undefined, name: string): EventTarget {
  return {
    apiVersion: `${group}/${version}`,
    kind: "IPAddressPool",
    name,
    uid: pool?.metadata?.uid,
  };
}

/** The pool a Service's status IPs were written from: ironlb's annotation, or MetalLB's. */
function allocatedFrom(svc: V1Service): string | undefined {
  const a = svc.metadata?.annotations ?? {};
  const suffix = ANNOTATIONS.allocatedFromPool.slice("ironlb.dev/".length);
  return (
    a[ANNOTATIONS.allocatedFromPool] ??
    METALLB_PREFIXES.map((p) => a[p + suffix]).find((v) => v !== undefined)
  );
}

function withoutAnnotations(svc: V1Service): V1Service {
  return {
    ...svc,
    metadata: { ...svc.metadata, annotations: {} },
    spec: { ...svc.spec, loadBalancerIP: undefined },
  };
}
