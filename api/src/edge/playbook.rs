//! `playbook-execution`: one playbook the device should run, as returned for the `ansible`
//! directive (`flotta-inventory.md` §3.4).

use serde::{Deserialize, Serialize};

/// A playbook execution for the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookExecution {
    /// Last data upload (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data_upload: Option<String>,
    /// PlaybookExecution name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The playbook (YAML text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansible_playbook_string: Option<String>,
}
