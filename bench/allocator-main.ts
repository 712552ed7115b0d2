import { runAllocatorBench } from "./allocator.ts";

for (const [k, v] of Object.entries(runAllocatorBench())) console.log(`${k}: ${v}`);
