//! The etcd v3 protobuf messages this backend sends and receives, written by hand.
//!
//! Only the messages and fields the store uses are declared; field numbers and names are
//! etcd's wire format (`etcdserverpb` for the KV and Watch services, `mvccpb` for keys and
//! events), so they decode what any etcd 3.x server sends. Fields left out here are skipped
//! as unknown fields when decoding. Nested transactions, leases, sorting and watch filters
//! are not declared because the store never uses them.

/// gRPC path of `KV.Range`.
pub(crate) const RANGE: &str = "/etcdserverpb.KV/Range";
/// gRPC path of `KV.Txn`.
pub(crate) const TXN: &str = "/etcdserverpb.KV/Txn";
/// gRPC path of `KV.Compact`.
pub(crate) const COMPACT: &str = "/etcdserverpb.KV/Compact";
/// gRPC path of `Watch.Watch` (bidirectional streaming).
pub(crate) const WATCH: &str = "/etcdserverpb.Watch/Watch";

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub(crate) cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) member_id: u64,
    /// The store revision when the request was applied.
    #[prost(int64, tag = "3")]
    pub(crate) revision: i64,
    #[prost(uint64, tag = "4")]
    pub(crate) raft_term: u64,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub(crate) create_revision: i64,
    #[prost(int64, tag = "3")]
    pub(crate) mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub(crate) version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub(crate) value: Vec<u8>,
    #[prost(int64, tag = "6")]
    pub(crate) lease: i64,
}

/// `mvccpb.Event.EventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum EventType {
    Put = 0,
    Delete = 1,
}

/// `mvccpb.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Event {
    #[prost(enumeration = "EventType", tag = "1")]
    pub(crate) r#type: i32,
    /// For a put, the key after it; for a delete, the key with the delete's revision.
    #[prost(message, optional, tag = "2")]
    pub(crate) kv: Option<KeyValue>,
    /// The key before the event (only when the watch asked for `prev_kv`).
    #[prost(message, optional, tag = "3")]
    pub(crate) prev_kv: Option<KeyValue>,
}

/// `etcdserverpb.RangeRequest` (sorting and the min/max revision filters left out).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    /// Exclusive end of the range; empty means just `key`.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) range_end: Vec<u8>,
    /// 0 means no limit.
    #[prost(int64, tag = "3")]
    pub(crate) limit: i64,
    /// 0 (or less) means the newest revision.
    #[prost(int64, tag = "4")]
    pub(crate) revision: i64,
    #[prost(bool, tag = "7")]
    pub(crate) serializable: bool,
    #[prost(bool, tag = "8")]
    pub(crate) keys_only: bool,
    #[prost(bool, tag = "9")]
    pub(crate) count_only: bool,
}

/// `etcdserverpb.RangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) kvs: Vec<KeyValue>,
    #[prost(bool, tag = "3")]
    pub(crate) more: bool,
    #[prost(int64, tag = "4")]
    pub(crate) count: i64,
}

/// `etcdserverpb.PutRequest` (lease options left out).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub(crate) lease: i64,
    #[prost(bool, tag = "4")]
    pub(crate) prev_kv: bool,
}

/// `etcdserverpb.PutResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub(crate) prev_kv: Option<KeyValue>,
}

/// `etcdserverpb.DeleteRangeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DeleteRangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) range_end: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub(crate) prev_kv: bool,
}

/// `etcdserverpb.DeleteRangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DeleteRangeResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(int64, tag = "2")]
    pub(crate) deleted: i64,
    #[prost(message, repeated, tag = "3")]
    pub(crate) prev_kvs: Vec<KeyValue>,
}

/// `etcdserverpb.Compare.CompareResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum CompareResult {
    Equal = 0,
    Greater = 1,
    Less = 2,
    NotEqual = 3,
}

/// `etcdserverpb.Compare.CompareTarget`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum CompareTarget {
    Version = 0,
    Create = 1,
    Mod = 2,
    Value = 3,
    Lease = 4,
}

/// `etcdserverpb.Compare`: one guard of a transaction.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Compare {
    #[prost(enumeration = "CompareResult", tag = "1")]
    pub(crate) result: i32,
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub(crate) target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) key: Vec<u8>,
    #[prost(oneof = "compare::TargetUnion", tags = "4, 5, 6, 7, 8")]
    pub(crate) target_union: Option<compare::TargetUnion>,
    #[prost(bytes = "vec", tag = "64")]
    pub(crate) range_end: Vec<u8>,
}

/// The `target_union` of [`Compare`].
pub(crate) mod compare {
    /// What a [`super::Compare`] compares the key's field with.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum TargetUnion {
        #[prost(int64, tag = "4")]
        Version(i64),
        #[prost(int64, tag = "5")]
        CreateRevision(i64),
        #[prost(int64, tag = "6")]
        ModRevision(i64),
        #[prost(bytes, tag = "7")]
        Value(Vec<u8>),
        #[prost(int64, tag = "8")]
        Lease(i64),
    }
}

impl Compare {
    /// `key`'s version (number of writes since creation; 0 when absent) against `operand`.
    pub(crate) fn version(key: &[u8], result: CompareResult, operand: i64) -> Self {
        Self::new(
            key,
            CompareTarget::Version,
            result,
            compare::TargetUnion::Version(operand),
        )
    }

    /// `key`'s create revision (0 when absent) against `operand`.
    pub(crate) fn create_revision(key: &[u8], result: CompareResult, operand: i64) -> Self {
        Self::new(
            key,
            CompareTarget::Create,
            result,
            compare::TargetUnion::CreateRevision(operand),
        )
    }

    /// `key`'s mod revision (0 when absent) against `operand`.
    pub(crate) fn mod_revision(key: &[u8], result: CompareResult, operand: i64) -> Self {
        Self::new(
            key,
            CompareTarget::Mod,
            result,
            compare::TargetUnion::ModRevision(operand),
        )
    }

    fn new(
        key: &[u8],
        target: CompareTarget,
        result: CompareResult,
        operand: compare::TargetUnion,
    ) -> Self {
        Self {
            result: result as i32,
            target: target as i32,
            key: key.to_vec(),
            target_union: Some(operand),
            range_end: Vec::new(),
        }
    }
}

/// `etcdserverpb.RequestOp` (nested transactions left out).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RequestOp {
    #[prost(oneof = "request_op::Request", tags = "1, 2, 3")]
    pub(crate) request: Option<request_op::Request>,
}

/// The `request` of [`RequestOp`].
pub(crate) mod request_op {
    /// One operation of a transaction branch.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Request {
        #[prost(message, tag = "1")]
        Range(super::RangeRequest),
        #[prost(message, tag = "2")]
        Put(super::PutRequest),
        #[prost(message, tag = "3")]
        DeleteRange(super::DeleteRangeRequest),
    }
}

impl RequestOp {
    /// A put of `value` under `key`.
    pub(crate) fn put(key: &[u8], value: Vec<u8>) -> Self {
        Self {
            request: Some(request_op::Request::Put(PutRequest {
                key: key.to_vec(),
                value,
                ..PutRequest::default()
            })),
        }
    }

    /// A delete of the single key `key`.
    pub(crate) fn delete(key: &[u8]) -> Self {
        Self {
            request: Some(request_op::Request::DeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                ..DeleteRangeRequest::default()
            })),
        }
    }

    /// A read of the single key `key`.
    pub(crate) fn get(key: &[u8]) -> Self {
        Self {
            request: Some(request_op::Request::Range(RangeRequest {
                key: key.to_vec(),
                ..RangeRequest::default()
            })),
        }
    }
}

/// `etcdserverpb.ResponseOp` (nested transactions left out).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseOp {
    #[prost(oneof = "response_op::Response", tags = "1, 2, 3")]
    pub(crate) response: Option<response_op::Response>,
}

/// The `response` of [`ResponseOp`].
pub(crate) mod response_op {
    /// The answer to one operation of a transaction branch.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Response {
        #[prost(message, tag = "1")]
        Range(super::RangeResponse),
        #[prost(message, tag = "2")]
        Put(super::PutResponse),
        #[prost(message, tag = "3")]
        DeleteRange(super::DeleteRangeResponse),
    }
}

/// `etcdserverpb.TxnRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub(crate) compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub(crate) failure: Vec<RequestOp>,
}

/// `etcdserverpb.TxnResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TxnResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(bool, tag = "2")]
    pub(crate) succeeded: bool,
    #[prost(message, repeated, tag = "3")]
    pub(crate) responses: Vec<ResponseOp>,
}

impl TxnResponse {
    /// The first range answer among the branch's responses, if any.
    pub(crate) fn first_range(&self) -> Option<&RangeResponse> {
        self.responses.iter().find_map(|op| match &op.response {
            Some(response_op::Response::Range(range)) => Some(range),
            _ => None,
        })
    }
}

/// `etcdserverpb.CompactionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CompactionRequest {
    #[prost(int64, tag = "1")]
    pub(crate) revision: i64,
    /// Wait until the compaction is physically applied to the backend.
    #[prost(bool, tag = "2")]
    pub(crate) physical: bool,
}

/// `etcdserverpb.CompactionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CompactionResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
}

/// `etcdserverpb.WatchRequest` (progress requests left out).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchRequest {
    #[prost(oneof = "watch_request::RequestUnion", tags = "1, 2")]
    pub(crate) request_union: Option<watch_request::RequestUnion>,
}

/// The `request_union` of [`WatchRequest`].
pub(crate) mod watch_request {
    /// Create or cancel a watcher on the stream.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum RequestUnion {
        #[prost(message, tag = "1")]
        CreateRequest(super::WatchCreateRequest),
        #[prost(message, tag = "2")]
        CancelRequest(super::WatchCancelRequest),
    }
}

/// `etcdserverpb.WatchCreateRequest` (filters left out).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchCreateRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) range_end: Vec<u8>,
    /// First revision to deliver (inclusive); 0 means "from now".
    #[prost(int64, tag = "3")]
    pub(crate) start_revision: i64,
    #[prost(bool, tag = "4")]
    pub(crate) progress_notify: bool,
    #[prost(bool, tag = "6")]
    pub(crate) prev_kv: bool,
    #[prost(int64, tag = "7")]
    pub(crate) watch_id: i64,
    #[prost(bool, tag = "8")]
    pub(crate) fragment: bool,
}

/// `etcdserverpb.WatchCancelRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchCancelRequest {
    #[prost(int64, tag = "1")]
    pub(crate) watch_id: i64,
}

/// `etcdserverpb.WatchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(int64, tag = "2")]
    pub(crate) watch_id: i64,
    #[prost(bool, tag = "3")]
    pub(crate) created: bool,
    #[prost(bool, tag = "4")]
    pub(crate) canceled: bool,
    /// Set when the watcher asked for (or fell behind to) a compacted revision.
    #[prost(int64, tag = "5")]
    pub(crate) compact_revision: i64,
    #[prost(string, tag = "6")]
    pub(crate) cancel_reason: String,
    #[prost(bool, tag = "7")]
    pub(crate) fragment: bool,
    #[prost(message, repeated, tag = "11")]
    pub(crate) events: Vec<Event>,
}

/// The header revision of a response as a store revision (0 when absent).
pub(crate) fn header_revision(header: Option<&ResponseHeader>) -> u64 {
    header.map_or(0, |h| to_revision(h.revision))
}

/// An etcd revision (`int64`, never negative in practice) as a store revision.
pub(crate) fn to_revision(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

/// A store revision as an etcd revision (saturating at `i64::MAX`).
pub(crate) fn from_revision(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// Bytes of a `RangeRequest{key: "a", range_end: "b", limit: 2, revision: 7}` as etcd's
    /// generated code encodes it: tags 1 and 2 length-delimited, 3 and 4 varints.
    #[test]
    fn range_request_wire_format() {
        let request = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 2,
            revision: 7,
            ..RangeRequest::default()
        };
        assert_eq!(
            request.encode_to_vec(),
            [0x0a, 1, b'a', 0x12, 1, b'b', 0x18, 2, 0x20, 7]
        );
    }

    #[test]
    fn compare_uses_the_oneof_tag_of_its_target() {
        let compare = Compare::mod_revision(b"k", CompareResult::Equal, 5);
        // target = MOD (2) at tag 2, key at tag 3, mod_revision at tag 6.
        assert_eq!(compare.encode_to_vec(), [0x10, 2, 0x1a, 1, b'k', 0x30, 5]);
    }

    #[test]
    fn watch_response_with_events_round_trips() {
        let response = WatchResponse {
            header: Some(ResponseHeader {
                revision: 9,
                ..ResponseHeader::default()
            }),
            watch_id: 1,
            events: vec![Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: b"/k".to_vec(),
                    mod_revision: 9,
                    ..KeyValue::default()
                }),
                prev_kv: None,
            }],
            ..WatchResponse::default()
        };
        let decoded = WatchResponse::decode(response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, response);
        assert_eq!(header_revision(decoded.header.as_ref()), 9);
    }
}
