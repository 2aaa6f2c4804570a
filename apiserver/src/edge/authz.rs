//! The authorization matrix of the device API (`flotta-inventory.md` §3.6), as pure
//! functions of who is calling, what they ask for and for which device id.
//!
//! Flotta's holes are closed:
//! - an expired certificate (bootstrap or device) is accepted only to enrol, and a device's
//!   own expired certificate to renew through `registration`; everything else gets 401;
//! - a device certificate only ever reaches its own `{id}` (403 otherwise), on every
//!   endpoint and directive, enrolment and registration included;
//! - the bootstrap certificate (`CN=register`) may enrol any id, may register a device only
//!   while it awaits its first registration (the caller checks that:
//!   [`Decision::AllowIfAwaitingFirstRegistration`]), gets 401 on `data/in`, `control/in`
//!   and `control/out`, and 403 on every other directive.
//!
//! A connection without a CA-signed certificate never gets here (the TLS handshake fails);
//! a missing identity is answered 401 all the same.

/// The caller, from its (CA-verified) client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// What kind of certificate it is.
    pub kind: CallerKind<'a>,
    /// Whether the certificate has expired.
    pub expired: bool,
}

/// The kind of client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind<'a> {
    /// The shared bootstrap certificate (`CN=register`).
    Bootstrap,
    /// A device certificate; its `CN` (lowercased) is the device id it was issued for.
    Device {
        /// The certificate's common name.
        common_name: &'a str,
    },
}

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET data/{id}/in`: the configuration.
    DataIn,
    /// `GET control/{id}/in`: commands.
    ControlIn,
    /// `POST control/{id}/out`: yggd's own messages.
    ControlOut,
    /// `POST data/{id}/out`, directive `enrolment`.
    Enrolment,
    /// `POST data/{id}/out`, directive `registration` (first registration or renewal).
    Registration,
    /// `POST data/{id}/out`, directive `heartbeat`.
    Heartbeat,
    /// `POST data/{id}/out`, directive `ansible`.
    Ansible,
    /// `POST data/{id}/out` with any other directive (answered 400 once authorized).
    OtherDirective,
}

impl Operation {
    /// The operation of a `POST data/{id}/out` with `directive`.
    pub fn of_directive(directive: &str) -> Self {
        match directive {
            flotta_api::edge::DIRECTIVE_ENROLMENT => Operation::Enrolment,
            flotta_api::edge::DIRECTIVE_REGISTRATION => Operation::Registration,
            flotta_api::edge::DIRECTIVE_HEARTBEAT => Operation::Heartbeat,
            flotta_api::edge::DIRECTIVE_ANSIBLE => Operation::Ansible,
            _ => Operation::OtherDirective,
        }
    }

    /// Whether an expired certificate may be used for this operation.
    fn accepts_expired(self) -> bool {
        matches!(self, Operation::Enrolment | Operation::Registration)
    }
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Go ahead only if the device is awaiting its first registration; 403 otherwise.
    AllowIfAwaitingFirstRegistration,
    /// 401: no usable credentials for this operation.
    Unauthorized,
    /// 403: valid credentials, but not for this device or operation.
    Forbidden,
}

/// Decides whether `caller` may perform `operation` on device `device_id`.
pub fn authorize(caller: Option<Caller<'_>>, operation: Operation, device_id: &str) -> Decision {
    let Some(caller) = caller else {
        return Decision::Unauthorized;
    };
    if caller.expired && !operation.accepts_expired() {
        return Decision::Unauthorized;
    }
    match caller.kind {
        CallerKind::Bootstrap => match operation {
            Operation::DataIn | Operation::ControlIn | Operation::ControlOut => {
                Decision::Unauthorized
            }
            Operation::Enrolment => Decision::Allow,
            // Renewal is for device certificates; an expired bootstrap certificate is not
            // a credential to obtain a new device certificate with.
            Operation::Registration if caller.expired => Decision::Unauthorized,
            Operation::Registration => Decision::AllowIfAwaitingFirstRegistration,
            Operation::Heartbeat | Operation::Ansible | Operation::OtherDirective => {
                Decision::Forbidden
            }
        },
        CallerKind::Device { common_name } if common_name == device_id => Decision::Allow,
        CallerKind::Device { .. } => Decision::Forbidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Operation; 8] = [
        Operation::DataIn,
        Operation::ControlIn,
        Operation::ControlOut,
        Operation::Enrolment,
        Operation::Registration,
        Operation::Heartbeat,
        Operation::Ansible,
        Operation::OtherDirective,
    ];

    fn bootstrap(expired: bool) -> Option<Caller<'static>> {
        Some(Caller {
            kind: CallerKind::Bootstrap,
            expired,
        })
    }

    fn device(common_name: &'static str, expired: bool) -> Option<Caller<'static>> {
        Some(Caller {
            kind: CallerKind::Device { common_name },
            expired,
        })
    }

    /// Asserts one row of the matrix: the decision for every operation, in `ALL` order
    /// (data/in, control/in, control/out, enrolment, registration, heartbeat, ansible,
    /// other directive).
    fn row(caller: Option<Caller<'_>>, device_id: &str, expected: [Decision; 8]) {
        for (operation, expected) in ALL.into_iter().zip(expected) {
            assert_eq!(
                authorize(caller, operation, device_id),
                expected,
                "{caller:?} {operation:?} on {device_id}"
            );
        }
    }

    use Decision::{
        Allow, AllowIfAwaitingFirstRegistration as IfAwaiting, Forbidden, Unauthorized,
    };

    #[test]
    fn no_certificate_is_unauthorized_everywhere() {
        row(None, "dev1", [Unauthorized; 8]);
    }

    #[test]
    fn valid_bootstrap() {
        row(
            bootstrap(false),
            "dev1",
            [
                Unauthorized,
                Unauthorized,
                Unauthorized,
                Allow,
                IfAwaiting,
                Forbidden,
                Forbidden,
                Forbidden,
            ],
        );
    }

    #[test]
    fn expired_bootstrap_may_only_enrol() {
        row(
            bootstrap(true),
            "dev1",
            [
                Unauthorized,
                Unauthorized,
                Unauthorized,
                Allow,
                Unauthorized,
                Unauthorized,
                Unauthorized,
                Unauthorized,
            ],
        );
    }

    #[test]
    fn valid_device_on_its_own_id() {
        row(device("dev1", false), "dev1", [Allow; 8]);
    }

    #[test]
    fn valid_device_on_another_id_is_forbidden_everywhere() {
        row(device("dev1", false), "dev2", [Forbidden; 8]);
    }

    #[test]
    fn expired_device_on_its_own_id_may_enrol_and_renew_only() {
        row(
            device("dev1", true),
            "dev1",
            [
                Unauthorized,
                Unauthorized,
                Unauthorized,
                Allow,
                Allow,
                Unauthorized,
                Unauthorized,
                Unauthorized,
            ],
        );
    }

    #[test]
    fn expired_device_on_another_id() {
        row(
            device("dev1", true),
            "dev2",
            [
                Unauthorized,
                Unauthorized,
                Unauthorized,
                Forbidden,
                Forbidden,
                Unauthorized,
                Unauthorized,
                Unauthorized,
            ],
        );
    }

    #[test]
    fn directives_map_to_operations() {
        assert_eq!(Operation::of_directive("enrolment"), Operation::Enrolment);
        assert_eq!(
            Operation::of_directive("registration"),
            Operation::Registration
        );
        assert_eq!(Operation::of_directive("heartbeat"), Operation::Heartbeat);
        assert_eq!(Operation::of_directive("ansible"), Operation::Ansible);
        assert_eq!(
            Operation::of_directive("Heartbeat"),
            Operation::OtherDirective
        );
        assert_eq!(Operation::of_directive(""), Operation::OtherDirective);
    }
}
