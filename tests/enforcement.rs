//! Enforcement suite: compiled capgate policies run under the real tools
//! (bwrap, squid, nftables, podman with runc) and probed from inside and
//! outside. See docs/enforcement.md for the matrix, the environment and the
//! mutation table. A missing tool skips loudly, or fails under `CI=true`.

#[path = "enforcement/support.rs"]
mod support;

#[path = "enforcement/bwrap.rs"]
mod bwrap;

#[path = "enforcement/nft.rs"]
mod nft;

#[path = "enforcement/squid.rs"]
mod squid;

#[path = "enforcement/podman.rs"]
mod podman;

#[path = "enforcement/paths.rs"]
mod paths;

#[path = "enforcement/srt.rs"]
mod srt;
