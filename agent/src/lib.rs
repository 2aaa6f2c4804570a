//! The Flotta device agent.
//!
//! Not built yet: enrolment, registration, configuration sync and podman workloads arrive
//! with the agent issue.
