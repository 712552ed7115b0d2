// `ironlb migrate-from-metallb --apply`: the converted objects written to the cluster with
// server-side apply (field manager MIGRATE_FIELD_MANAGER), so that running it again changes
// nothing, and a field someone else set to another value is a conflict that is reported,
// not overwritten. It refuses before writing anything when ironlb's CRDs are not served
// (objects of a missing CRD would fail one by one, after the others were written).
import { apiVersion, group, version } from "../api/group.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { ConvertedObject } from "./migrate-metallb.ts";

/** Who owns the fields this command applies (kubectl get --show-managed-fields shows it). */
export const MIGRATE_FIELD_MANAGER = "ironlb-migrate-from-metallb";

type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
};

/** The discovery document of ironlb.dev/v1beta1 (what `kubectl api-resources` reads). */
export interface ApiResourceList {
  resources?: Array<{ name: string; kind: string }>;
}

/**
 * The kinds of ironlb's group among `objects` that the API server does not serve (their
 * CRD is not installed), given its discovery document (undefined: the group is not served).
 */
export function missingKinds(
  objects: readonly ConvertedObject[],
  discovery: ApiResourceList | undefined,
): string[] {
  const served = new Set((discovery?.resources ?? []).map((r) => r.kind));
  const wanted = new Set(
    objects
      .map((o) => o.object as Obj)
      .filter((o) => o.apiVersion === apiVersion)
      .map((o) => String(o.kind)),
  );
  return [...wanted].filter((k) => !served.has(k)).sort();
}

/** Where an object lives: ironlb's cluster-scoped kinds, or a core namespaced one (Secret). */
function objectPath(o: Obj, plurals: ReadonlyMap<string, string>): string {
  const name = encodeURIComponent(o.metadata?.name ?? "");
  if (o.apiVersion === apiVersion)
    return `/apis/${group}/${version}/${plurals.get(String(o.kind))}/${name}`;
  const ns = encodeURIComponent(o.metadata?.namespace ?? "default");
  return `/api/v1/namespaces/${ns}/${String(o.kind).toLowerCase()}s/${name}`;
}

/** What kubectl calls an object in its output: "ipaddresspool.ironlb.dev/public". */
function display(o: Obj): string {
  const kind = String(o.kind).toLowerCase();
  return `${o.apiVersion === apiVersion ? `${kind}.${group}` : kind}/${o.metadata?.name}`;
}

export interface ApplyResult {
  /** One line per object, as kubectl prints: "… created", "… configured", "… unchanged". */
  lines: string[];
  /** Objects that could not be applied, with the API server's reason. */
  errors: string[];
}

/** Refuses (an error, nothing written) when ironlb's CRDs are missing; else applies each object. */
export async function applyConversion(
  api: KubeClient,
  objects: readonly ConvertedObject[],
): Promise<ApplyResult> {
  let discovery: ApiResourceList | undefined;
  try {
    discovery = await api.get<ApiResourceList>(`/apis/${group}/${version}`);
  } catch (err) {
    if (httpStatus(err) !== 404) throw err;
  }
  const missing = missingKinds(objects, discovery);
  if (missing.length > 0)
    return {
      lines: [],
      errors: [
        `ironlb's CRDs are not installed (the API server does not serve ${missing.map((k) => `${k} (${apiVersion})`).join(", ")}): nothing was applied; install ironlb's chart, or its CRDs (kubectl apply --server-side -f charts/ironlb/crds/), then run this again`,
      ],
    };
  // Subresources ("ipaddresspools/status") carry their parent's kind: only the resources.
  const plurals = new Map(
    (discovery?.resources ?? []).filter((r) => !r.name.includes("/")).map((r) => [r.kind, r.name]),
  );
  const lines: string[] = [];
  const errors: string[] = [];
  for (const { object } of objects) {
    const o = object as Obj;
    const path = objectPath(o, plurals);
    try {
      let before: string | undefined;
      try {
        before = (await api.get<Obj>(path)).metadata?.resourceVersion;
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
      }
      const after = await api.request<Obj>("PATCH", path, {
        body: object,
        contentType: "application/apply-patch+yaml",
        query: { fieldManager: MIGRATE_FIELD_MANAGER },
      });
      const what =
        before === undefined
          ? "created"
          : after.metadata?.resourceVersion === before
            ? "unchanged"
            : "configured";
      lines.push(`${display(o)} ${what}`);
    } catch (err) {
      const why =
        httpStatus(err) === 409
          ? `it has fields someone else set to other values (edit them, or delete the object, and run this again): ${describeError(err)}`
          : describeError(err);
      errors.push(`${display(o)} not applied: ${why}`);
    }
  }
  return { lines, errors };
}
