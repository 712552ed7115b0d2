// The API group and version, in a module of their own so that code needing only the
// names (the speaker) does not load zod.
export const group = "ironlb.dev";
export const version = "v1beta1";
export const apiVersion = `${group}/${version}`;
