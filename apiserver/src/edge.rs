//! The device-facing Edge API: Flotta's `/api/flotta-management/v1` over mutual TLS
//! (`flotta-inventory.md` §3), the device PKI, and the [`backend::DeviceBackend`] seam
//! behind it.

pub mod authz;
pub mod backend;
pub mod ca;
pub mod configuration;
pub mod handlers;
pub mod listener;
pub mod liveness;
pub mod metrics;
