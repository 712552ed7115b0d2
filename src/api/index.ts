// The ironlb.dev/v1beta1 API: checkers and types for IPAddressPool, L2Advertisement,
// IPAnnouncement, BGPPeer, BGPAdvertisement, BGPSessionState and BFDProfile, and the messages for pool
// addresses (the grammar is src/net's).
export * from "./addresses.ts";
export * from "./bfdprofile.ts";
export * from "./bgpadvertisement.ts";
export * from "./bgppeer.ts";
export * from "./bgpsessionstate.ts";
export * from "./common.ts";
export * from "./ipaddresspool.ts";
export * from "./ipannouncement.ts";
export * from "./l2advertisement.ts";
export * from "./validate.ts";
export * from "./vocabulary.ts";
