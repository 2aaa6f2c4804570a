//! The Flotta API server: a Kubernetes-style aggregated API server for the
//! `management.project-flotta.io` kinds, over a pluggable [`flotta_api::store::Store`].

pub mod auth;
pub mod cluster;
pub mod config;
pub mod controllers;
pub mod edge;
pub mod election;
pub mod pki;
pub mod resources;
pub mod rest;
pub mod server;
pub mod store;
pub mod tls;
mod x509;
