// BFDProfile (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_bfdprofiles.yaml. MetalLB's field names and units (milliseconds).
// Echo mode is refused: ironlb's BFD (src/bfd) is asynchronous mode only.
import {
  envelope,
  type ObjectMeta,
  type ParseOptions,
  type ParseResult,
  parseWith,
} from "./common.ts";
import { boolean, integer, object, optional, withDefault } from "./validate.ts";

export const bfdProfileKind = "BFDProfile";
export const bfdProfilePlural = "bfdprofiles";

/** Messages shared with the CRD's CEL rules. */
export const bfdProfileMessages = {
  echoMode:
    "echoMode is not supported (ironlb runs BFD in asynchronous mode only); leave it out or set it to false",
} as const;

/** MetalLB's defaults, milliseconds. */
export const bfdProfileDefaults = {
  receiveInterval: 300,
  transmitInterval: 300,
  detectMultiplier: 3,
  passiveMode: false,
} as const;

export interface BFDProfileSpec {
  receiveInterval: number;
  transmitInterval: number;
  detectMultiplier: number;
  echoMode?: boolean;
  echoInterval?: number;
  passiveMode: boolean;
  minimumTtl?: number;
}

const interval = integer(10, 60000);

export const bfdProfileSpec = object<BFDProfileSpec>(
  {
    receiveInterval: withDefault(interval, bfdProfileDefaults.receiveInterval),
    transmitInterval: withDefault(interval, bfdProfileDefaults.transmitInterval),
    detectMultiplier: withDefault(integer(2, 255), bfdProfileDefaults.detectMultiplier),
    echoMode: optional(boolean()),
    echoInterval: optional(interval),
    passiveMode: withDefault(boolean(), bfdProfileDefaults.passiveMode),
    minimumTtl: optional(integer(1, 254)),
  },
  {
    strict: true,
    refine: (s) => (s.echoMode === true ? [bfdProfileMessages.echoMode] : []),
  },
);

export interface BFDProfile {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "BFDProfile";
  metadata: ObjectMeta;
  spec: BFDProfileSpec;
}

export const bfdProfile = object<BFDProfile>({
  ...envelope(bfdProfileKind),
  // No spec means every default, as the CRD's `default: {}` gives.
  spec: withDefault(bfdProfileSpec, { ...bfdProfileDefaults }),
});

/** Validates a whole BFDProfile object as the apiserver would, applying defaults. */
export function parseBFDProfile(obj: unknown, opts?: ParseOptions): ParseResult<BFDProfile> {
  return parseWith(bfdProfile, obj, opts);
}
