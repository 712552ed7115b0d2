// The messages for IPAddressPool address entries, the same words as the CRD's CEL rules
// (config/crd/ironlb.dev_ipaddresspools.yaml). The grammar itself is src/net's, which
// follows CEL's `isIP`/`isCIDR`: an entry the apiserver accepts is accepted here and the
// other way round, and both report the same messages.
import { parseIP } from "../net/address.ts";
import { isMasked, parseCIDR } from "../net/cidr.ts";
import { parseRangeEnds } from "../net/range.ts";

/** The messages shared with the CRD's CEL rules. */
export const addressMessages = {
  shape:
    "each address must be a CIDR like 198.51.100.0/24 or 2001:db8::/64, or a range like 198.51.100.10-198.51.100.20",
  spaces: "an address must not contain spaces (write a range as 198.51.100.10-198.51.100.20)",
  prefix: "the prefix length after '/' must be a number from 0 to 32 for IPv4 or 0 to 128 for IPv6",
  hostBits: (entry: string) =>
    `host bits are set in ${entry}: a CIDR must start at its network address (like 198.51.100.0/24, not 198.51.100.5/24)`,
  mixed: "a range must not mix IPv4 and IPv6",
  order: "range start must not be after its end",
} as const;

/**
 * Checks one `spec.addresses` entry with exactly the rules of the CRD and returns every
 * message that the apiserver would report for it (empty when the entry is valid; then
 * `parseAddressEntry` of src/net/range.ts gives its interval).
 */
export function addressEntryErrors(entry: string): string[] {
  const errors: string[] = [];
  const cidr = parseCIDR(entry);
  const range = parseRangeEnds(entry);
  if (cidr === undefined && range === undefined) errors.push(addressMessages.shape);
  if (entry.includes(" ")) errors.push(addressMessages.spaces);
  const slash = entry.lastIndexOf("/");
  if (slash >= 0 && cidr === undefined && parseIP(entry.slice(0, slash)) !== undefined) {
    errors.push(addressMessages.prefix);
  }
  if (cidr !== undefined && !isMasked(cidr)) errors.push(addressMessages.hostBits(entry));
  if (range !== undefined) {
    if (range.start.family !== range.end.family) errors.push(addressMessages.mixed);
    else if (range.start.value > range.end.value) errors.push(addressMessages.order);
  }
  return errors;
}
