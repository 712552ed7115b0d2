// Structured logs: one JSON object per line (pino), with the component and, where it
// applies, the Service ("service": "ns/name") or pool ("pool": "name") concerned.
import { type Logger, pino } from "pino";

export type { Logger };

/** The root logger of a component; LOG_LEVEL overrides the level (default info). */
export function createLogger(component: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}
