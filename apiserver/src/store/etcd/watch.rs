//! Watch streams: one etcd watcher per [`Store::watch`](flotta_api::store::Store::watch)
//! call, its events translated into store [`Event`]s.
//!
//! A task reads etcd's responses as soon as they arrive and forwards the events into a
//! bounded channel, so neither etcd nor the HTTP/2 connection shared with every other call
//! ever waits for a slow consumer. A consumer that lets the channel fill up is dropped: its
//! stream yields the events already buffered, then [`StoreError::WatcherLagged`]. Every
//! other end is an error too: a `compact_revision` from etcd becomes
//! [`StoreError::Compacted`] (requested = the last revision delivered), a cancelled watch or
//! a broken connection [`StoreError::Backend`]. A member that lost its leader (partitioned
//! from the majority) ends the stream with "etcdserver: no leader" (the watch requires a
//! leader, see `client.rs`): that, like any `Unavailable` end, also marks the endpoint as
//! failed, so the caller's re-watch goes to another member. Dropping the stream stops the
//! task, which cancels the etcd watcher by resetting its HTTP/2 stream.
//!
//! Event shapes: a put is etcd's key-value with the previous one (`prev_kv`) as `prev`; a
//! delete keeps the previous value and create revision with the delete's revision, as the
//! store trait asks. etcd can only attach a previous key-value that is not yet compacted;
//! without it a delete event has an empty value and create revision 0.

use flotta_api::store::{Event, EventKind, KeyValue, Revision, StoreError, WatchStream};
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};

use super::Keys;
use super::client::{EtcdError, WatchCall, is_no_leader};
use super::rpc::{self, EventType};

/// Turns an open etcd watch into a store [`WatchStream`] delivering events after `after`,
/// buffering at most `capacity` of them (at least 1).
pub(super) fn stream(call: WatchCall, keys: Keys, after: Revision, capacity: usize) -> WatchStream {
    let (events, received) = mpsc::channel(capacity.max(1));
    let (end, ended) = oneshot::channel();
    tokio::spawn(forward(call, keys, after, events, end));
    futures::stream::unfold(
        Some((received, ended)),
        |state: Option<(mpsc::Receiver<Event>, oneshot::Receiver<StoreError>)>| async move {
            let (mut received, ended) = state?;
            match received.recv().await {
                Some(event) => Some((Ok(event), Some((received, ended)))),
                // The task reports why it stopped before it drops the sender.
                None => {
                    let error = ended
                        .await
                        .unwrap_or_else(|_| StoreError::Backend("etcd watch task stopped".into()));
                    Some((Err(error), None))
                }
            }
        },
    )
    .boxed()
}

/// Forwards events until the watch ends or the consumer goes away; on an end, sends why.
async fn forward(
    mut call: WatchCall,
    keys: Keys,
    after: Revision,
    events: mpsc::Sender<Event>,
    end: oneshot::Sender<StoreError>,
) {
    let endpoint = call.endpoint.clone();
    let mut last = after;
    let error = 'watch: loop {
        let message = tokio::select! {
            () = events.closed() => return,
            message = call.responses.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                break StoreError::Backend(format!("etcd {endpoint}: the watch stream closed"));
            }
            Err(status) => {
                let error = EtcdError::from_status(&endpoint, &status);
                if error.is_unreachable() {
                    call.endpoint_failed();
                }
                break error.into();
            }
        };
        if response.compact_revision > 0 {
            break StoreError::Compacted {
                requested: last,
                compacted: rpc::to_revision(response.compact_revision),
            };
        }
        if response.canceled {
            if is_no_leader(&response.cancel_reason) {
                call.endpoint_failed();
            }
            break StoreError::Backend(format!(
                "etcd {endpoint}: watch cancelled: {}",
                response.cancel_reason
            ));
        }
        for event in response.events {
            let event = match store_event(&keys, event) {
                Ok(event) => event,
                Err(e) => break 'watch e,
            };
            last = event.revision();
            match events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => break 'watch StoreError::WatcherLagged,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    };
    let _ = end.send(error);
}

/// An etcd event as a store event (see the module documentation for deletes).
pub(super) fn store_event(keys: &Keys, event: rpc::Event) -> Result<Event, StoreError> {
    let kv = event
        .kv
        .ok_or_else(|| StoreError::Backend("etcd sent an event without a key".into()))?;
    let prev = event.prev_kv.map(|prev| keys.key_value(prev)).transpose()?;
    match EventType::try_from(event.r#type) {
        Ok(EventType::Put) => Ok(Event {
            kind: EventKind::Put,
            kv: keys.key_value(kv)?,
            prev,
        }),
        Ok(EventType::Delete) => {
            let (value, create_revision) = prev
                .as_ref()
                .map_or((Vec::new(), 0), |p| (p.value.clone(), p.create_revision));
            Ok(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: keys.strip(&kv.key)?,
                    value,
                    create_revision,
                    mod_revision: rpc::to_revision(kv.mod_revision),
                },
                prev,
            })
        }
        Err(_) => Err(StoreError::Backend(format!(
            "etcd sent an event of unknown type {}",
            event.r#type
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etcd_kv(key: &str, value: &str, create: i64, modified: i64) -> rpc::KeyValue {
        rpc::KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: create,
            mod_revision: modified,
            version: 1,
            value: value.as_bytes().to_vec(),
            lease: 0,
        }
    }

    fn kv(key: &str, value: &str, create: u64, modified: u64) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
            create_revision: create,
            mod_revision: modified,
        }
    }

    #[test]
    fn a_delete_carries_the_previous_value_at_its_own_revision() {
        let keys = Keys::new("/p");
        let event = rpc::Event {
            r#type: EventType::Delete as i32,
            kv: Some(rpc::KeyValue {
                key: b"/p/a".to_vec(),
                mod_revision: 9,
                ..rpc::KeyValue::default()
            }),
            prev_kv: Some(etcd_kv("/p/a", "v2", 4, 7)),
        };
        assert_eq!(
            store_event(&keys, event).unwrap(),
            Event {
                kind: EventKind::Delete,
                kv: kv("/a", "v2", 4, 9),
                prev: Some(kv("/a", "v2", 4, 7)),
            }
        );
    }

    #[test]
    fn a_put_keeps_etcd_revisions_and_strips_the_prefix() {
        let keys = Keys::new("/p");
        let event = rpc::Event {
            r#type: EventType::Put as i32,
            kv: Some(etcd_kv("/p/a", "v1", 3, 3)),
            prev_kv: None,
        };
        assert_eq!(
            store_event(&keys, event).unwrap(),
            Event {
                kind: EventKind::Put,
                kv: kv("/a", "v1", 3, 3),
                prev: None,
            }
        );
        let foreign = rpc::Event {
            r#type: EventType::Put as i32,
            kv: Some(etcd_kv("/q/a", "v1", 3, 3)),
            prev_kv: None,
        };
        assert!(matches!(
            store_event(&keys, foreign),
            Err(StoreError::Backend(_))
        ));
    }
}
