//! A minimal etcd v3 gRPC client: the four calls the store makes (`KV.Range`, `KV.Txn`,
//! `KV.Compact`, `Watch.Watch`) over tonic channels, with etcd's messages from [`super::rpc`].
//!
//! Endpoints: one lazily connected HTTP/2 channel per URL of `--etcd-servers` (`http://` is
//! plaintext, `https://` is TLS with the configured CA and optional client certificate). Calls
//! go to the current endpoint; when it is unreachable (gRPC `Unavailable`, or no answer in
//! time) the next one becomes current. Reads and watch creations, which have no side
//! effects, are retried once on every other endpoint. Writes are retried on the next
//! endpoint only when the connection could not be made ([`EtcdError::Unsent`]: refused,
//! dial timeout, TLS handshake), since the request then provably never left; once it may
//! have reached etcd a write is never retried, as a write whose answer was lost may have
//! been applied. etcd itself forwards writes to its leader.
//!
//! Partitions: watches are opened with etcd's require-leader metadata (`hasleader: true`, as
//! clientv3's `WithRequireLeader`), so a member cut off from the majority refuses new watches
//! and ends open ones with "etcdserver: no leader" (`Unavailable`) after a few election
//! timeouts instead of keeping a silent stream open forever. Either answer moves the client
//! on to the next endpoint ([`WatchCall::endpoint_failed`]).
//!
//! Bounds: connecting gives up after [`DIAL_TIMEOUT`], a unary call after
//! [`REQUEST_TIMEOUT`]; HTTP/2 keepalive pings (every [`KEEPALIVE_INTERVAL`], only while a
//! call or watch is open, as etcd's server policy requires) detect a dead connection under
//! a long watch. Responses up to 2 GiB are accepted (etcd's own limit), so large lists are
//! not cut off by gRPC's default 4 MiB. Requests over etcd's `--max-request-bytes` (1.5 MiB
//! by default) are refused by etcd ([`EtcdError::is_too_large`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, ConnectError, Status, Streaming};

use super::rpc::{self, WatchCreateRequest, WatchRequest, WatchResponse, watch_request};

/// How long connecting to one endpoint may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a unary call (range, transaction, compaction) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval of HTTP/2 keepalive pings while calls are open (etcd refuses pings more often
/// than every 5 s by default).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a keepalive ping may stay unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// etcd's require-leader gRPC metadata (`rpctypes.MetadataRequireLeaderKey` and
/// `MetadataHasLeader`): a member without a leader refuses the call, and ends a stream opened
/// with it once it has been without a leader for a few election timeouts.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";

/// The largest response accepted (etcd's own default send limit is `math.MaxInt32`).
const MAX_MESSAGE: usize = 2_147_483_647;

/// HTTP/2 flow-control windows: larger than the 64 KiB default so that big lists and busy
/// watches are not throttled by round trips.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// How to reach etcd: endpoint URLs and TLS material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// `http://host:port` or `https://host:port` URLs of etcd members.
    pub servers: Vec<String>,
    /// PEM CA bundle that signs the members' serving certificates (https only).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate presented to the members (https only; with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Why talking to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No `--etcd-servers` were given.
    #[error(
        "--store etcd needs --etcd-servers (or FLOTTA_ETCD_SERVERS): etcd client URLs, comma separated"
    )]
    NoEndpoints,
    /// An endpoint is not an `http://` or `https://` URL with a host.
    #[error("etcd endpoint {url:?}: {reason}")]
    BadEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings are incomplete or unreadable.
    #[error("etcd TLS: {0}")]
    Tls(String),
    /// A TLS file could not be read.
    #[error("reading {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// etcd (or the connection to it) answered a call with a gRPC error.
    #[error("etcd {endpoint}: {message}")]
    Rpc {
        /// The endpoint URL the call went to.
        endpoint: String,
        /// The gRPC status code.
        code: Code,
        /// The status message with its causes.
        message: String,
    },
    /// The connection to the endpoint could not be made (refused, dial timeout, TLS
    /// handshake), so the call was never sent: safe to send again elsewhere, even a write.
    #[error("etcd {endpoint}: {message}")]
    Unsent {
        /// The endpoint URL the call was meant for.
        endpoint: String,
        /// Why the connection failed.
        message: String,
    },
    /// A call got no answer in time.
    #[error("etcd {endpoint}: no answer within {timeout:?}")]
    Timeout {
        /// The endpoint URL the call went to.
        endpoint: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// etcd answered with something this client does not understand.
    #[error("etcd {endpoint}: {message}")]
    Protocol {
        /// The endpoint URL the call went to.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
}

impl EtcdError {
    /// etcd's `ErrCompacted`: the requested revision has been compacted.
    pub fn is_compacted(&self) -> bool {
        matches!(self, EtcdError::Rpc { code: Code::OutOfRange, message, .. }
            if message.contains("required revision has been compacted"))
    }

    /// etcd's `ErrFutureRev`: the requested revision is newer than the store's.
    pub fn is_future_revision(&self) -> bool {
        matches!(self, EtcdError::Rpc { code: Code::OutOfRange, message, .. }
            if message.contains("required revision is a future revision"))
    }

    /// The request was larger than etcd accepts: etcd's `ErrRequestTooLarge` (over
    /// `--max-request-bytes`, `InvalidArgument`) or its gRPC server's receive limit
    /// (`--max-request-bytes` plus 512 KiB, `ResourceExhausted`).
    pub fn is_too_large(&self) -> bool {
        match self {
            EtcdError::Rpc {
                code: Code::InvalidArgument,
                message,
                ..
            } => message.contains("request is too large"),
            EtcdError::Rpc {
                code: Code::ResourceExhausted,
                message,
                ..
            } => message.contains("received message larger than max"),
            _ => false,
        }
    }

    /// The endpoint could not be reached, did not answer, or has no leader: worth trying
    /// another one.
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(
            self,
            EtcdError::Rpc {
                code: Code::Unavailable,
                ..
            } | EtcdError::Unsent { .. }
                | EtcdError::Timeout { .. }
        )
    }

    /// The call was never sent (see [`EtcdError::Unsent`]).
    fn is_unsent(&self) -> bool {
        matches!(self, EtcdError::Unsent { .. })
    }

    /// The error for a gRPC status answered by (or on the way to) `endpoint`: a failure to
    /// connect (tonic's [`ConnectError`] among the causes) is [`EtcdError::Unsent`].
    pub(crate) fn from_status(endpoint: &str, status: &Status) -> Self {
        let mut unsent = false;
        // Transport failures carry the useful part ("connection refused") in the causes.
        let mut message = status.message().to_owned();
        let mut source = std::error::Error::source(status);
        while let Some(cause) = source {
            unsent |= cause.is::<ConnectError>();
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        if message.is_empty() {
            message = format!("gRPC status {:?}", status.code());
        }
        if unsent {
            return EtcdError::Unsent {
                endpoint: endpoint.to_owned(),
                message,
            };
        }
        EtcdError::Rpc {
            endpoint: endpoint.to_owned(),
            code: status.code(),
            message,
        }
    }
}

/// One etcd member's URL and channel.
#[derive(Debug)]
struct Target {
    url: String,
    channel: Channel,
}

/// A cheap-to-clone handle on the etcd endpoints (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    targets: Arc<[Target]>,
    current: Arc<AtomicUsize>,
}

/// An open watch: the responses after the `created` one, and the endpoint serving them.
pub(crate) struct WatchCall {
    /// The endpoint URL, for error messages.
    pub(crate) endpoint: String,
    /// etcd's responses.
    pub(crate) responses: Streaming<WatchResponse>,
    /// The client that opened the watch and the index of the endpoint serving it.
    client: Client,
    index: usize,
}

impl WatchCall {
    /// Marks the endpoint serving this watch as failed (it lost its leader or its
    /// connection), so that the next call, and the re-watch, go to another one.
    pub(crate) fn endpoint_failed(&self) {
        self.client.failed(self.index);
    }
}

/// Which failures a call is sent again on the next endpoint for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Any unreachable endpoint: the call has no side effects.
    Unreachable,
    /// Only a connection that could not be made: the call was never sent.
    Unsent,
}

impl Client {
    /// Channels to every endpoint, connected lazily on first use. Reads the TLS files.
    pub(crate) async fn new(opts: &ClientOptions) -> Result<Self, EtcdError> {
        let servers: Vec<&str> = opts
            .servers
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let tls = if servers.iter().any(|s| s.starts_with("https://")) {
            Some(tls_config(opts).await?)
        } else {
            None
        };
        let targets = servers
            .into_iter()
            .map(|url| target(url, tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            targets: targets.into(),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The endpoint URLs, comma separated (for messages).
    pub(crate) fn endpoints(&self) -> String {
        let urls: Vec<&str> = self.targets.iter().map(|t| t.url.as_str()).collect();
        urls.join(",")
    }

    /// `KV.Range`; retried on the other endpoints when one is unreachable.
    pub(crate) async fn range(
        &self,
        request: rpc::RangeRequest,
    ) -> Result<rpc::RangeResponse, EtcdError> {
        self.unary(rpc::RANGE, request, Retry::Unreachable).await
    }

    /// `KV.Txn`; retried on the other endpoints only when it was never sent.
    pub(crate) async fn txn(
        &self,
        request: rpc::TxnRequest,
    ) -> Result<rpc::TxnResponse, EtcdError> {
        self.unary(rpc::TXN, request, Retry::Unsent).await
    }

    /// `KV.Compact`; retried on the other endpoints only when it was never sent.
    pub(crate) async fn compact(
        &self,
        request: rpc::CompactionRequest,
    ) -> Result<rpc::CompactionResponse, EtcdError> {
        self.unary(rpc::COMPACT, request, Retry::Unsent).await
    }

    /// Opens a `Watch.Watch` stream with one watcher (requiring a leader, see the module
    /// documentation) and waits for etcd to confirm it. The request side stays open for as
    /// long as the returned stream lives: etcd ends a watch stream whose client has finished
    /// sending.
    pub(crate) async fn watch(&self, create: WatchCreateRequest) -> Result<WatchCall, EtcdError> {
        let mut last = None;
        for (index, target) in self.attempts() {
            match watch_once(target, create.clone()).await {
                Ok(responses) => {
                    return Ok(WatchCall {
                        endpoint: target.url.clone(),
                        responses,
                        client: self.clone(),
                        index,
                    });
                }
                Err(e) if e.is_unreachable() => {
                    self.failed(index);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EtcdError::NoEndpoints))
    }

    async fn unary<Req, Resp>(
        &self,
        path: &'static str,
        request: Req,
        retry: Retry,
    ) -> Result<Resp, EtcdError>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut last = None;
        for (index, target) in self.attempts() {
            match unary_once(target, path, request.clone()).await {
                Ok(response) => return Ok(response),
                Err(e) if e.is_unreachable() => {
                    self.failed(index);
                    if retry == Retry::Unsent && !e.is_unsent() {
                        return Err(e);
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EtcdError::NoEndpoints))
    }

    /// Every endpoint once, current first.
    fn attempts(&self) -> impl Iterator<Item = (usize, &Target)> {
        let count = self.targets.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        (0..count).map(move |i| {
            let index = (first + i) % count;
            (index, &self.targets[index])
        })
    }

    /// Moves on from endpoint `index` unless another call already did.
    fn failed(&self, index: usize) {
        let next = (index + 1) % self.targets.len();
        let _ = self
            .current
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn grpc(target: &Target) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(target.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
}

/// Waits until the channel can take a call; a failure here means nothing was sent.
async fn ready(grpc: &mut tonic::client::Grpc<Channel>, target: &Target) -> Result<(), EtcdError> {
    grpc.ready().await.map_err(|e| EtcdError::Unsent {
        endpoint: target.url.clone(),
        message: e.to_string(),
    })
}

async fn unary_once<Req, Resp>(
    target: &Target,
    path: &'static str,
    request: Req,
) -> Result<Resp, EtcdError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = grpc(target);
    let call = async {
        ready(&mut grpc, target).await?;
        grpc.unary(
            tonic::Request::new(request),
            PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<Req, Resp>::default(),
        )
        .await
        .map_err(|status| EtcdError::from_status(&target.url, &status))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(EtcdError::Timeout {
            endpoint: target.url.clone(),
            timeout: REQUEST_TIMEOUT,
        }),
    }
}

async fn watch_once(
    target: &Target,
    create: WatchCreateRequest,
) -> Result<Streaming<WatchResponse>, EtcdError> {
    let mut grpc = grpc(target);
    let request = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    };
    let requests = futures::stream::once(async move { request }).chain(futures::stream::pending());
    let mut request = tonic::Request::new(requests);
    request.metadata_mut().insert(
        REQUIRE_LEADER_KEY,
        MetadataValue::from_static(REQUIRE_LEADER_VALUE),
    );
    let status = |status: Status| EtcdError::from_status(&target.url, &status);
    let call = async {
        ready(&mut grpc, target).await?;
        let mut responses = grpc
            .streaming(
                request,
                PathAndQuery::from_static(rpc::WATCH),
                tonic_prost::ProstCodec::<WatchRequest, WatchResponse>::default(),
            )
            .await
            .map_err(status)?
            .into_inner();
        let first = responses.message().await.map_err(status)?;
        match first {
            Some(response) if response.created && !response.canceled => Ok(responses),
            Some(response) if is_no_leader(&response.cancel_reason) => Err(EtcdError::Rpc {
                endpoint: target.url.clone(),
                code: Code::Unavailable,
                message: created_failure(&response),
            }),
            Some(response) => Err(EtcdError::Protocol {
                endpoint: target.url.clone(),
                message: created_failure(&response),
            }),
            None => Err(EtcdError::Protocol {
                endpoint: target.url.clone(),
                message: "the watch stream closed before the watch was created".into(),
            }),
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(EtcdError::Timeout {
            endpoint: target.url.clone(),
            timeout: REQUEST_TIMEOUT,
        }),
    }
}

/// Whether a watch cancel reason is etcd's "no leader" (`rpctypes.ErrNoLeader`).
pub(crate) fn is_no_leader(reason: &str) -> bool {
    reason.contains("no leader")
}

/// Why a watch was not created, from etcd's first response.
fn created_failure(response: &WatchResponse) -> String {
    if response.compact_revision > 0 {
        format!(
            "watch refused: revision compacted (compact revision {})",
            response.compact_revision
        )
    } else if !response.cancel_reason.is_empty() {
        format!("watch refused: {}", response.cancel_reason)
    } else {
        "the first watch response did not confirm the watch".into()
    }
}

fn target(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Target, EtcdError> {
    let bad = |reason: &str| EtcdError::BadEndpoint {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("expected an http:// or https:// URL")),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("expected scheme://host:port without a path"));
    }
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| bad(&e.to_string()))?
        .connect_timeout(DIAL_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    if https {
        let tls = tls.ok_or_else(|| bad("https needs TLS settings"))?;
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| bad(&format!("TLS: {e}")))?;
    }
    Ok(Target {
        url: url.to_owned(),
        channel: endpoint.connect_lazy(),
    })
}

async fn tls_config(opts: &ClientOptions) -> Result<ClientTlsConfig, EtcdError> {
    let ca_file = opts.ca_file.as_deref().ok_or_else(|| {
        EtcdError::Tls(
            "https etcd endpoints need --etcd-cafile (the CA of etcd's serving certificates)"
                .into(),
        )
    })?;
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca_file).await?));
    match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read(cert).await?, read(key).await?));
        }
        (None, None) => {}
        _ => {
            return Err(EtcdError::Tls(
                "--etcd-certfile and --etcd-keyfile go together".into(),
            ));
        }
    }
    Ok(config)
}

async fn read(path: &Path) -> Result<Vec<u8>, EtcdError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| EtcdError::ReadFile {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(servers: &[&str]) -> ClientOptions {
        ClientOptions {
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            ..ClientOptions::default()
        }
    }

    #[tokio::test]
    async fn endpoints_are_validated() {
        assert!(matches!(
            Client::new(&options(&[])).await,
            Err(EtcdError::NoEndpoints)
        ));
        assert!(matches!(
            Client::new(&options(&[" ", ""])).await,
            Err(EtcdError::NoEndpoints)
        ));
        for bad in [
            "127.0.0.1:2379",
            "unix:///run/etcd.sock",
            "http://h:1/path",
            "http://",
        ] {
            let err = Client::new(&options(&[bad])).await.expect_err(bad);
            assert!(matches!(err, EtcdError::BadEndpoint { .. }), "{bad}: {err}");
        }
        let err = Client::new(&options(&["https://127.0.0.1:2379"]))
            .await
            .expect_err("https without a CA");
        assert!(err.to_string().contains("--etcd-cafile"), "{err}");
        let client = Client::new(&options(&["http://127.0.0.1:1", " http://[::1]:2/ "]))
            .await
            .expect("valid endpoints");
        assert_eq!(client.endpoints(), "http://127.0.0.1:1,http://[::1]:2/");
    }

    #[test]
    fn etcd_revision_errors_are_recognised() {
        let rpc = |code, message: &str| EtcdError::Rpc {
            endpoint: "http://e".into(),
            code,
            message: message.into(),
        };
        let compacted = rpc(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        assert!(compacted.is_compacted() && !compacted.is_future_revision());
        let future = rpc(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        );
        assert!(future.is_future_revision() && !future.is_compacted());
        assert!(!rpc(Code::Unknown, "required revision has been compacted").is_compacted());
        assert!(rpc(Code::Unavailable, "connection refused").is_unreachable());
    }

    #[test]
    fn etcd_size_limits_are_recognised() {
        let rpc = |code, message: &str| EtcdError::Rpc {
            endpoint: "http://e".into(),
            code,
            message: message.into(),
        };
        assert!(rpc(Code::InvalidArgument, "etcdserver: request is too large").is_too_large());
        assert!(
            rpc(
                Code::ResourceExhausted,
                "grpc: received message larger than max (2500017 vs. 2097152)"
            )
            .is_too_large()
        );
        assert!(
            !rpc(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded"
            )
            .is_too_large()
        );
        assert!(!rpc(Code::InvalidArgument, "etcdserver: key is not provided").is_too_large());
    }

    #[test]
    fn only_a_failed_connection_is_unsent() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = Status::from_error(Box::new(ConnectError(Box::new(refused))));
        assert_eq!(status.code(), Code::Unavailable);
        let error = EtcdError::from_status("http://e", &status);
        assert!(error.is_unsent() && error.is_unreachable(), "{error:?}");
        let no_leader =
            EtcdError::from_status("http://e", &Status::unavailable("etcdserver: no leader"));
        assert!(
            no_leader.is_unreachable() && !no_leader.is_unsent(),
            "{no_leader:?}"
        );
    }

    /// A write to a closed port is refused before anything is sent: `Unsent`, so it may go
    /// to the next endpoint.
    #[tokio::test]
    async fn a_refused_connection_leaves_the_call_unsent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = Client::new(&options(&[&url])).await.unwrap();
        let error = client.txn(rpc::TxnRequest::default()).await.unwrap_err();
        assert!(
            matches!(&error, EtcdError::Unsent { endpoint, .. } if *endpoint == url),
            "{error:?}"
        );
    }
}
