//! The list benchmarks: the whole collection as JSON and as a `meta.k8s.io/v1` Table, and
//! the first page of a paged list (`limit=N`).
//!
//! Each run is timed on the client from sending the request to having read the whole body
//! (over one warm HTTP/1.1 keep-alive connection); the body is checked afterwards, outside
//! the timing (item or row count, continue token). One unmeasured run of each kind goes
//! first so that a cold first request does not count. Limits: a single client, one request
//! at a time; the client shares the machine with the server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde_json::Value;

use crate::client::{ACCEPT_TABLE, ApiError, Credentials, Endpoint, Protocol, expect_body};
use crate::stats::{self, Samples};

/// What the list benchmarks measured.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Full list as JSON.
    pub json: Samples,
    /// Server CPU time per full JSON list.
    pub json_cpu: Option<Duration>,
    /// Size of the JSON list body, bytes.
    pub json_bytes: usize,
    /// Full list as a Table.
    pub table: Samples,
    /// Server CPU time per full Table list.
    pub table_cpu: Option<Duration>,
    /// Size of the Table body, bytes.
    pub table_bytes: usize,
    /// First page.
    pub first_page: Samples,
    /// Server CPU time per first page.
    pub page_cpu: Option<Duration>,
    /// The collection's resourceVersion as of the last first-page run.
    pub resource_version: String,
}

/// The things a run's body must show.
enum Expect {
    Items(usize),
    Rows(usize),
    Page(usize),
}

/// Times one GET and checks its body; returns the time, the body size and the list's
/// resourceVersion.
async fn timed(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    expect: &Expect,
) -> Result<(Duration, usize, String), ApiError> {
    let what = format!("GET {url}");
    let started = Instant::now();
    let body = expect_body(
        &what,
        client.get(url).header(ACCEPT, accept),
        StatusCode::OK,
    )
    .await?;
    let elapsed = started.elapsed();
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unexpected(&what, format!("body is not JSON: {e}")))?;
    let count = |field: &str| value.get(field).and_then(Value::as_array).map(Vec::len);
    let continues = value
        .pointer("/metadata/continue")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty());
    let ok = match *expect {
        Expect::Items(n) => count("items") == Some(n),
        Expect::Rows(n) => count("rows") == Some(n),
        Expect::Page(n) => count("items") == Some(n) && continues,
    };
    if !ok {
        return Err(ApiError::unexpected(
            &what,
            format!(
                "wrong content: kind {:?}, {:?} items, {:?} rows, continue token: {continues}",
                value.get("kind"),
                count("items"),
                count("rows"),
            ),
        ));
    }
    let rv = value
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok((elapsed, body.len(), rv))
}

/// What [`repeat`] measured.
struct Repeated {
    times: Samples,
    cpu: Option<Duration>,
    bytes: usize,
    resource_version: String,
}

/// Runs `runs` measured requests after one warm-up.
async fn repeat(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    expect: Expect,
    runs: usize,
    cpu: &dyn Fn() -> Option<Duration>,
) -> Result<Repeated, ApiError> {
    timed(client, url, accept, &expect).await?;
    let mut times = Vec::with_capacity(runs);
    let mut last = (0, String::new());
    // The server's CPU time covers the response checks too, when the server is idle.
    let before = cpu();
    for _ in 0..runs {
        let (t, bytes, rv) = timed(client, url, accept, &expect).await?;
        times.push(t);
        last = (bytes, rv);
    }
    Ok(Repeated {
        times: Samples::new(times),
        cpu: stats::per_op(before, cpu(), runs),
        bytes: last.0,
        resource_version: last.1,
    })
}

/// How many of what to list.
#[derive(Debug, Clone, Copy)]
pub struct ListPlan {
    /// Devices that exist (the full list's expected length).
    pub devices: usize,
    /// Measured full-list runs per representation.
    pub list_runs: usize,
    /// The first page's size.
    pub page_size: usize,
    /// Measured first-page runs.
    pub page_runs: usize,
}

/// Lists the devices `list_runs` times as JSON and as Table, then the first page
/// `page_runs` times; `cpu` reads the server's CPU time.
pub async fn run(
    creds: &Credentials,
    endpoint: &Endpoint,
    plan: ListPlan,
    cpu: &dyn Fn() -> Option<Duration>,
) -> Result<ListResult, ApiError> {
    let ListPlan {
        devices,
        list_runs,
        page_size,
        page_runs,
    } = plan;
    let client = creds.client(Protocol::Http1)?;
    let all = endpoint.devices();
    let json = repeat(
        &client,
        &all,
        "application/json",
        Expect::Items(devices),
        list_runs,
        cpu,
    )
    .await?;
    let table = repeat(
        &client,
        &all,
        ACCEPT_TABLE,
        Expect::Rows(devices),
        list_runs,
        cpu,
    )
    .await?;
    let page_url = format!("{all}?limit={page_size}");
    let expect = if page_size < devices {
        Expect::Page(page_size)
    } else {
        Expect::Items(devices)
    };
    let page = repeat(
        &client,
        &page_url,
        "application/json",
        expect,
        page_runs,
        cpu,
    )
    .await?;
    Ok(ListResult {
        json: json.times,
        json_cpu: json.cpu,
        json_bytes: json.bytes,
        table: table.times,
        table_cpu: table.cpu,
        table_bytes: table.bytes,
        first_page: page.times,
        page_cpu: page.cpu,
        resource_version: page.resource_version,
    })
}
