#!/usr/bin/env node
// The ironlb command. Node >= 24 runs the TypeScript sources directly (type stripping),
// so there is no separate build output to keep in step with src/.
await import("../src/cli/main.ts");
