import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

// Four tiers: unit (pure, no I/O), tools (checks that run external tools such as shellcheck
// and vagrant, which test/install-deps.sh installs), integration (a real kube-apiserver +
// etcd started once per run by the global setup), e2e (network namespaces, needs root).
export default defineConfig({
  test: {
    // Unit and tools files run side by side on at least two workers: vitest's default (one
    // fewer than the cores) is one worker on a 2-core machine, and these files are CPU-bound.
    // Integration and e2e files run one at a time whatever this says (fileParallelism).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "tools",
          include: ["test/tools/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/controlplane/vitest-global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/controlplane/vitest-global-setup.ts"],
          setupFiles: ["test/e2e/setup-labs.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
