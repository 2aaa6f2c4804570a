//! The Flotta device agent: one process that enrols a device with the Edge API, keeps its
//! certificate fresh, applies the configuration it polls, runs the workloads behind a
//! [`runtime::ContainerRuntime`], and reports heartbeats (`flotta-inventory.md` §6).
//!
//! Components: [`config`] (settings), [`identity`] (certificates), [`client`] (the device
//! API), [`state`] (the state directory), [`hardware`] (inventory from procfs/sysfs),
//! [`runtime`] (workloads; [`runtime::podman`], with systemd units and nftables rules when
//! the host has them), and [`agent`] (the loop tying them together). Metrics, logs, OS
//! updates and playbooks are not implemented; they would be further components fed the
//! applied configuration.

pub mod agent;
pub mod client;
pub mod config;
pub mod hardware;
pub mod identity;
pub mod runtime;
pub mod state;
