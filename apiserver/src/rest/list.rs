//! `LIST` with selectors and paging. All pages of one list are one snapshot: the continue
//! token carries the revision of the first page and the next key, and later pages read the
//! store at that revision (410 once history no longer reaches it).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flotta_api::store::{Revision, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::collection::{Collection, decode_at};
use super::error::ApiError;
use super::filter::Filter;
use super::request::QueryOptions;

/// Store reads are done in batches of at least this many keys when a selector filters.
const MIN_BATCH: usize = 256;

/// The key that marks a store as started, so that its revision is never 0 (clients
/// refuse a list `resourceVersion` of `"0"`).
const STARTED_KEY: &str = "/registry/flotta.internal/started";

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// Matching objects in key order (namespace, then name).
    pub items: Vec<Value>,
    /// The snapshot revision.
    pub revision: Revision,
    /// The token for the next page, if any.
    pub continue_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_token(rv: i64, start: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_token(token: &str) -> Result<(Option<Revision>, String), ApiError> {
    let bad = || ApiError::BadRequest("continue key is not valid".into());
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.start.contains("..") || t.start.starts_with('/') {
        return Err(bad());
    }
    // rv -1 means "continue at the latest revision" (issued with a 410).
    let rv = match t.rv {
        -1 => None,
        n if n > 0 => Some(u64::try_from(n).map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok((rv, t.start))
}

/// Parses a `resourceVersion` query value.
pub(super) fn parse_resource_version(rv: &str) -> Result<Revision, ApiError> {
    rv.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))
}

impl Collection<'_> {
    /// The store prefix of a namespace, or of every namespace.
    pub(super) fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.def.namespaced => format!("{}{ns}/", self.def.key_prefix()),
            _ => self.def.key_prefix(),
        }
    }

    /// The store's current revision, made non-zero on a brand-new store.
    pub(super) async fn current_revision(&self) -> Result<Revision, ApiError> {
        let target = self.target("");
        let rev = self
            .store
            .current_revision()
            .await
            .map_err(|e| ApiError::from_store(e, &target))?;
        if rev > 0 {
            return Ok(rev);
        }
        match self.store.create(STARTED_KEY, b"{}".to_vec()).await {
            Ok(rev) => Ok(rev),
            Err(StoreError::AlreadyExists(_)) => self
                .store
                .current_revision()
                .await
                .map_err(|e| ApiError::from_store(e, &target)),
            Err(e) => Err(ApiError::from_store(e, &target)),
        }
    }

    /// Lists objects (one page when `limit` is set).
    pub async fn list(
        &self,
        namespace: Option<&str>,
        opts: &QueryOptions,
        filter: &Filter,
    ) -> Result<Page, ApiError> {
        let prefix = self.prefix(namespace);
        let target = self.target("");
        let (mut revision, mut start) = match &opts.continue_token {
            Some(token) => {
                let (rv, start) = decode_token(token)?;
                (rv, format!("{prefix}{start}"))
            }
            None => {
                let rv = match (
                    opts.resource_version.as_deref(),
                    opts.resource_version_match.as_deref(),
                ) {
                    (Some(rv), Some("Exact")) => Some(parse_resource_version(rv)?),
                    (None, Some(m)) => {
                        return Err(ApiError::BadRequest(format!(
                            "resourceVersionMatch {m:?} requires a resourceVersion"
                        )));
                    }
                    (Some(rv), _) if rv != "0" => {
                        // "Not older than": the current state satisfies it unless the
                        // client has seen a future revision.
                        let wanted = parse_resource_version(rv)?;
                        let current = self.current_revision().await?;
                        if wanted > current {
                            return Err(ApiError::TooLargeResourceVersion {
                                requested: wanted,
                                current,
                            });
                        }
                        None
                    }
                    _ => None,
                };
                (rv, prefix.clone())
            }
        };
        if revision.is_none() {
            revision = Some(self.current_revision().await?);
        }
        let batch = match opts.limit {
            0 => 0,
            n if filter.is_everything() => n + 1,
            n => (n + 1).max(MIN_BATCH),
        };
        let mut items = Vec::new();
        let mut continue_token = None;
        'pages: loop {
            let result = match self.store.list(&prefix, &start, batch, revision).await {
                Ok(r) => r,
                Err(StoreError::Compacted { .. }) if opts.continue_token.is_some() => {
                    let rest = start.strip_prefix(&prefix).unwrap_or_default();
                    return Err(ApiError::ContinueExpired {
                        fresh_token: encode_token(-1, rest),
                    });
                }
                Err(e) => return Err(ApiError::from_store(e, &target)),
            };
            let rev = result.revision;
            revision = Some(rev);
            for kv in &result.items {
                let obj = decode_at(kv, kv.mod_revision)?;
                if !filter.matches(&obj) {
                    continue;
                }
                if opts.limit > 0 && items.len() == opts.limit {
                    // One more match exists: the page is full, continue at this key.
                    let rest = kv.key.strip_prefix(&prefix).unwrap_or_default();
                    continue_token = Some(encode_token(i64::try_from(rev).unwrap_or(-1), rest));
                    break 'pages;
                }
                items.push(obj);
            }
            if !result.more {
                break;
            }
            match result.items.last() {
                Some(last) => start = format!("{}\u{0}", last.key),
                None => break,
            }
        }
        Ok(Page {
            items,
            revision: revision.unwrap_or_default(),
            continue_token,
        })
    }

    /// Deletes every object the filter selects (honouring finalizers) and returns them.
    pub async fn delete_collection(
        &self,
        namespace: Option<&str>,
        filter: &Filter,
        dry_run: bool,
    ) -> Result<Page, ApiError> {
        let page = self
            .list(namespace, &QueryOptions::default(), filter)
            .await?;
        let mut deleted = Vec::with_capacity(page.items.len());
        for obj in &page.items {
            let name = super::object::meta_str(obj, "name").unwrap_or_default();
            let ns = super::object::meta_str(obj, "namespace");
            let options = super::collection::DeleteOptions::default();
            match self.delete(ns, name, &options, dry_run).await {
                Ok(
                    super::collection::Deleted::Gone(o) | super::collection::Deleted::Pending(o),
                ) => deleted.push(o),
                // Deleted by someone else meanwhile: nothing left to do for it.
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Page {
            items: deleted,
            revision: page.revision,
            continue_token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let t = encode_token(42, "ns/dev-1\u{0}");
        assert_eq!(
            decode_token(&t).unwrap(),
            (Some(42), "ns/dev-1\u{0}".to_string())
        );
        let t = encode_token(-1, "a");
        assert_eq!(decode_token(&t).unwrap(), (None, "a".to_string()));
        assert!(decode_token("not-base64!").is_err());
        assert!(decode_token(&encode_token(3, "../x")).is_err());
        assert!(decode_token(&encode_token(0, "x")).is_err());
    }
}
