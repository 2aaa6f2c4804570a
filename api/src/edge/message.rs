//! The message envelope (`message`, `message-response`) and the `command` content of control
//! messages (`flotta-inventory.md` §3.3).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kind of a [`Message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageType {
    /// yggd's own connection state, sent on the control channel.
    ConnectionStatus,
    /// A command for the device (e.g. `disconnect`).
    Command,
    /// An event from yggd.
    Event,
    /// A data message: configuration to the device, directives from it.
    Data,
}

/// The envelope of every message on the `data` and `control` channels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Kind of message.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    /// Identifier of this message (a UUID in practice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Identifier of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_to: Option<String>,
    /// Protocol version; the server sends 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// When the message was sent (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// What the content is about: `enrolment`, `registration`, `heartbeat`, `ansible`,
    /// `device`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The payload; its schema depends on the directive.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub content: Value,
}

impl Message {
    /// The directive, or `""` when absent.
    pub fn directive(&self) -> &str {
        self.directive.as_deref().unwrap_or_default()
    }
}

/// The answer to a `POST data/{id}/out` that returns content (`registration`, `ansible`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageResponse {
    /// Identifier of the request message this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The request's directive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// The payload.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub content: Value,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The content of a `command` message; `arguments` is always written (`null` when none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The command, e.g. `disconnect`.
    #[serde(default)]
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Value,
}
