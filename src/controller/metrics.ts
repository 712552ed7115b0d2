// The controller's Prometheus metrics.
import { Counter, Gauge, Histogram, processMetrics, Registry } from "../observability/metrics.ts";

/** Creates the controller's metrics in a registry of their own (tests may run several controllers). */
export function controllerMetrics() {
  const registry = new Registry();
  // Process figures (RSS, heap, event-loop lag, CPU) next to ironlb's own.
  processMetrics(registry);
  return {
    registry,
    poolAddresses: new Gauge({
      name: "ironlb_pool_addresses",
      help: "Usable addresses in a pool, per family (saturates at 2^53-1 for huge IPv6 pools).",
      labelNames: ["pool", "family"],
      registry,
    }),
    poolInUse: new Gauge({
      name: "ironlb_pool_addresses_in_use",
      help: "Addresses of a pool assigned to at least one Service, per family.",
      labelNames: ["pool", "family"],
      registry,
    }),
    allocations: new Counter({
      name: "ironlb_allocations_total",
      help: "Services that were given (or changed) their external IPs.",
      registry,
    }),
    failures: new Counter({
      name: "ironlb_allocation_failures_total",
      help: "Reconciles that left a Service without the IPs it asked for, by reason.",
      labelNames: ["reason"],
      registry,
    }),
    reconcile: new Histogram({
      name: "ironlb_reconcile_duration_seconds",
      help: "Time to reconcile one Service, including API writes.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registry,
    }),
    leader: new Gauge({
      name: "ironlb_controller_leader",
      help: "1 while this replica is the elected leader.",
      registry,
    }),
  };
}

export type ControllerMetrics = ReturnType<typeof controllerMetrics>;
