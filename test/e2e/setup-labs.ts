// Runs after every e2e file's own hooks: destroys the labs (test/lab/lab.ts) the file
// created and did not destroy, e.g. one whose `beforeAll` timed out inside `Lab.create`
// (its processes, kube-proxy among them, would otherwise outlive the run).
import { afterAll } from "vitest";

afterAll(async () => {
  const labs = (globalThis as { [k: symbol]: Set<{ destroy(): Promise<void> }> | undefined })[
    Symbol.for("ironlb.unfinishedLabs")
  ];
  for (const lab of [...(labs ?? [])]) await lab.destroy();
});
