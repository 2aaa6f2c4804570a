//! Informers: one list-then-watch loop per kind that feeds every change, in order, to the
//! controllers observing that kind, which update their in-memory indexes and queue keys.
//!
//! After a list (at start, and again whenever the watch history is gone) the informer
//! reports only what differs from what it had reported: new objects as `Added`, changed
//! ones (by resourceVersion) as `Modified`, and vanished ones as `Deleted` with a minimal
//! object carrying just `metadata.name` and `metadata.namespace`. A broken watch resumes
//! from the last revision seen, so no change is lost or repeated.
//!
//! Limits: the informer keeps only keys and resourceVersions, not objects; observers keep
//! whatever they need. Observers run on the informer's task and must not block.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flotta_api::selector::Selector;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::{ClientError, EventType, Kind, Objects, Revision};
use crate::meta::{self, ObjectKey};

/// Delay before retrying a failed list or watch; doubled up to [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest delay between retries of a failing list or watch.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Something that wants to hear about every change of some kinds.
pub(crate) trait Observer: Send + Sync {
    /// One change. For `Deleted`, `object` is the last known state (possibly only its
    /// name and namespace).
    fn observe(&self, kind: Kind, event: EventType, object: &Value);
}

/// The list-and-watch loop of one kind.
pub(crate) struct Informer {
    client: Arc<dyn Objects>,
    feed: Feed,
}

/// What an informer reports to the observers of one kind, and what it has reported so far
/// (the resourceVersion of every object it knows).
struct Feed {
    kind: Kind,
    observers: Vec<Arc<dyn Observer>>,
    known: HashMap<ObjectKey, Revision>,
}

impl Informer {
    /// An informer of `kind` feeding `observers`.
    pub(crate) fn new(
        client: Arc<dyn Objects>,
        kind: Kind,
        observers: Vec<Arc<dyn Observer>>,
    ) -> Self {
        Informer {
            client,
            feed: Feed::new(kind, observers),
        }
    }

    /// Runs until the task is aborted; `synced` turns true after the first full list has
    /// been reported.
    pub(crate) async fn run(mut self, synced: watch::Sender<bool>) {
        let kind = self.feed.kind;
        let mut delay = RETRY_DELAY;
        loop {
            let listed = match self.client.list(kind, None, &Selector::everything()).await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(kind = %kind, %error, "controllers: list failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    continue;
                }
            };
            self.feed.resync(listed.items);
            synced.send_replace(true);
            let mut after = listed.revision;
            // Watch until the history is gone; then list again.
            loop {
                let mut events = match self.client.watch(kind, after).await {
                    Ok(events) => events,
                    Err(ClientError::Expired(_)) => break,
                    Err(error) => {
                        tracing::warn!(kind = %kind, %error, "controllers: watch failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                        continue;
                    }
                };
                delay = RETRY_DELAY;
                let expired = loop {
                    match events.next().await {
                        Some(Ok(event)) => {
                            after = after.max(event.revision);
                            self.feed.apply(event.type_, &event.object);
                        }
                        Some(Err(ClientError::Expired(_))) => break true,
                        Some(Err(error)) => {
                            tracing::debug!(kind = %kind, %error, "controllers: watch ended; resuming");
                            break false;
                        }
                        None => break false,
                    }
                };
                if expired {
                    break;
                }
            }
        }
    }
}

impl Feed {
    /// Nothing reported yet.
    fn new(kind: Kind, observers: Vec<Arc<dyn Observer>>) -> Self {
        Feed {
            kind,
            observers,
            known: HashMap::new(),
        }
    }

    fn emit(&self, event: EventType, object: &Value) {
        for observer in &self.observers {
            observer.observe(self.kind, event, object);
        }
    }

    fn apply(&mut self, event: EventType, object: &Value) {
        let Some(key) = ObjectKey::of(object) else {
            return;
        };
        match event {
            EventType::Added | EventType::Modified => {
                self.known.insert(key, resource_version(object));
            }
            EventType::Deleted => {
                self.known.remove(&key);
            }
        }
        self.emit(event, object);
    }

    /// Reports the difference between a fresh list and what was reported before.
    fn resync(&mut self, items: Vec<Value>) {
        let mut fresh = HashMap::with_capacity(items.len());
        for object in &items {
            let Some(key) = ObjectKey::of(object) else {
                continue;
            };
            let revision = resource_version(object);
            let event = match self.known.get(&key) {
                Some(seen) if *seen == revision => None,
                Some(_) => Some(EventType::Modified),
                None => Some(EventType::Added),
            };
            if let Some(event) = event {
                self.emit(event, object);
            }
            fresh.insert(key, revision);
        }
        let gone: Vec<ObjectKey> = self
            .known
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            let object = json!({"metadata": {"name": key.name, "namespace": key.namespace}});
            self.emit(EventType::Deleted, &object);
        }
        self.known = fresh;
    }
}

fn resource_version(object: &Value) -> Revision {
    meta::meta_str(object, "resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(EventType, String)>>);

    impl Observer for Recorder {
        fn observe(&self, _: Kind, event: EventType, object: &Value) {
            let name = meta::meta_str(object, "name")
                .unwrap_or_default()
                .to_owned();
            self.0.lock().unwrap().push((event, name));
        }
    }

    fn object(name: &str, rv: u64) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string()}})
    }

    #[test]
    fn a_relist_reports_only_the_difference() {
        let recorder = Arc::new(Recorder::default());
        let mut feed = Feed::new(Kind::EdgeDevice, vec![recorder.clone()]);
        feed.resync(vec![object("a", 1), object("b", 1)]);
        feed.apply(EventType::Modified, &object("b", 2));
        recorder.0.lock().unwrap().clear();

        feed.resync(vec![object("a", 3), object("b", 2), object("c", 4)]);
        feed.resync(vec![object("b", 2), object("c", 4)]);
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (EventType::Modified, "a".to_owned()),
                (EventType::Added, "c".to_owned()),
                (EventType::Deleted, "a".to_owned()),
            ]
        );
    }
}
