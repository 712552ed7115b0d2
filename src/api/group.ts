// The API group and version, in a module of their own so that code needing only the
// names does not load the validators.
export const group = "ironlb.dev";
export const version = "v1beta1";
export const apiVersion = `${group}/${version}`;
