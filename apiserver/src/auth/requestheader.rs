//! The request-header ("front proxy") authenticator of aggregated mode: who the
//! kube-apiserver aggregator says the user is (`kube-api-contract.md` §2.2, §2.4).
//!
//! The identity headers are believed only after the caller has checked that the client
//! certificate chains to the request-header CA ([`RequestHeaderConfig::ca`]) and that its
//! `CN` is allowed ([`RequestHeaderConfig::allows_common_name`]). Then:
//! - user name: the first non-empty value among the username headers;
//! - uid: the first non-empty value among the uid headers;
//! - groups: every non-empty value of every group header, in order, one group per header
//!   line (values are not split on commas);
//! - extra: for each extra prefix and each header starting with it (case-insensitively),
//!   key = the rest of the header name, lowercased and %-unescaped (kept as is when it does
//!   not unescape), with every value appended.
//!
//! Whatever the verdict, [`RequestHeaderConfig::strip`] removes all these headers before
//! the request goes on, so nothing later can mistake an unverified header for an identity.

use std::collections::BTreeMap;

use http::HeaderMap;
use http::header::HeaderName;

use super::client_certificate::CertificatePool;

/// Go's defaults for the request-header flags, used when they are given on the command
/// line instead of read from the cluster (no uid header by default, as in Go).
pub const DEFAULT_USERNAME_HEADERS: &[&str] = &["X-Remote-User"];
/// See [`DEFAULT_USERNAME_HEADERS`].
pub const DEFAULT_GROUP_HEADERS: &[&str] = &["X-Remote-Group"];
/// See [`DEFAULT_USERNAME_HEADERS`].
pub const DEFAULT_EXTRA_HEADER_PREFIXES: &[&str] = &["X-Remote-Extra-"];

/// An identity asserted by request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertedUser {
    /// The user name.
    pub name: String,
    /// The uid, if one was sent.
    pub uid: String,
    /// The groups, in header order.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// How to recognise the front proxy and read its headers.
#[derive(Debug, Clone)]
pub struct RequestHeaderConfig {
    /// CA the front proxy's client certificate must chain to.
    pub ca: CertificatePool,
    /// Common names the front proxy's certificate may have; empty allows any.
    pub allowed_names: Vec<String>,
    /// Headers naming the user.
    pub username_headers: Vec<HeaderName>,
    /// Headers carrying the user's uid.
    pub uid_headers: Vec<HeaderName>,
    /// Headers carrying one group each.
    pub group_headers: Vec<HeaderName>,
    /// Prefixes of headers carrying extra attributes, lowercased.
    pub extra_prefixes: Vec<String>,
}

impl RequestHeaderConfig {
    /// A configuration from header names as Kubernetes writes them (any case); names that
    /// are not valid HTTP header names are skipped, since no request can carry them.
    pub fn new(
        ca: CertificatePool,
        allowed_names: Vec<String>,
        username_headers: &[String],
        uid_headers: &[String],
        group_headers: &[String],
        extra_prefixes: &[String],
    ) -> Self {
        let names = |list: &[String]| {
            list.iter()
                .filter_map(|name| HeaderName::try_from(name.trim()).ok())
                .collect()
        };
        RequestHeaderConfig {
            ca,
            allowed_names,
            username_headers: names(username_headers),
            uid_headers: names(uid_headers),
            group_headers: names(group_headers),
            extra_prefixes: extra_prefixes
                .iter()
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Whether a verified front-proxy certificate with this common name may assert
    /// identities.
    pub fn allows_common_name(&self, common_name: Option<&str>) -> bool {
        self.allowed_names.is_empty()
            || common_name.is_some_and(|cn| self.allowed_names.iter().any(|n| n == cn))
    }

    /// The identity the headers assert; `None` when no username header has a value.
    pub fn asserted_user(&self, headers: &HeaderMap) -> Option<AssertedUser> {
        let first_value = |names: &[HeaderName]| {
            names.iter().find_map(|name| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            })
        };
        let name = first_value(&self.username_headers)?;
        let uid = first_value(&self.uid_headers).unwrap_or_default();
        let groups = self
            .group_headers
            .iter()
            .flat_map(|name| headers.get_all(name))
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for prefix in &self.extra_prefixes {
            for header in headers.keys() {
                // HeaderMap keys are lowercase already.
                let Some(raw_key) = header.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                let key = match percent_encoding::percent_decode_str(raw_key).decode_utf8() {
                    Ok(key) => key.into_owned(),
                    Err(_) => raw_key.to_owned(),
                };
                let values = headers
                    .get_all(header)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_owned);
                extra.entry(key).or_default().extend(values);
            }
        }
        Some(AssertedUser {
            name,
            uid,
            groups,
            extra,
        })
    }

    /// Removes every identity header this configuration knows from `headers`.
    pub fn strip(&self, headers: &mut HeaderMap) {
        for name in self
            .username_headers
            .iter()
            .chain(&self.uid_headers)
            .chain(&self.group_headers)
        {
            headers.remove(name);
        }
        let extra: Vec<HeaderName> = headers
            .keys()
            .filter(|h| {
                self.extra_prefixes
                    .iter()
                    .any(|p| h.as_str().starts_with(p.as_str()))
            })
            .cloned()
            .collect();
        for name in extra {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config(allowed: &[&str]) -> RequestHeaderConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        RequestHeaderConfig::new(
            CertificatePool::from_certificates(vec![ca.der().clone()]).unwrap(),
            strings(allowed),
            &strings(&["X-Remote-User", "X-Other-User"]),
            &strings(&["X-Remote-Uid"]),
            &strings(&["X-Remote-Group", "X-Other-Group"]),
            &strings(&["X-Remote-Extra-"]),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn reads_identity_headers() {
        let config = config(&[]);
        let map = headers(&[
            ("x-remote-user", ""),
            ("X-Other-User", "alice"),
            ("X-Remote-Uid", "u-1"),
            ("X-Remote-Group", "devs,ops"),
            ("X-Remote-Group", ""),
            ("X-Remote-Group", "system:masters"),
            ("X-Other-Group", "late"),
            ("X-Remote-Extra-Scopes", "a"),
            ("X-Remote-Extra-scopes", "b"),
            (
                "X-Remote-Extra-Authentication.kubernetes.io%2fpod-Name",
                "mypod",
            ),
            ("X-Remote-Extra-bad%zzkey", "v"),
            ("Accept", "application/json"),
        ]);
        let user = config.asserted_user(&map).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.uid, "u-1");
        assert_eq!(user.groups, ["devs,ops", "system:masters", "late"]);
        assert_eq!(
            user.extra,
            BTreeMap::from([
                (
                    "authentication.kubernetes.io/pod-name".into(),
                    vec!["mypod".into()]
                ),
                ("bad%zzkey".into(), vec!["v".into()]),
                ("scopes".into(), vec!["a".into(), "b".into()]),
            ])
        );
        assert_eq!(
            config.asserted_user(&headers(&[("X-Remote-Group", "g")])),
            None
        );
    }

    #[test]
    fn strips_every_identity_header() {
        let config = config(&[]);
        let mut map = headers(&[
            ("X-Remote-User", "alice"),
            ("X-Other-User", "bob"),
            ("X-Remote-Uid", "u"),
            ("X-Remote-Group", "a"),
            ("X-Remote-Group", "b"),
            ("X-Other-Group", "c"),
            ("X-Remote-Extra-Foo", "x"),
            ("X-Remote-Extra-Bar", "y"),
            ("Accept", "application/json"),
        ]);
        config.strip(&mut map);
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn allowed_names() {
        assert!(config(&[]).allows_common_name(Some("anything")));
        assert!(config(&[]).allows_common_name(None));
        let listed = config(&["front-proxy-client", "aggregator"]);
        assert!(listed.allows_common_name(Some("aggregator")));
        assert!(!listed.allows_common_name(Some("front-proxy")));
        assert!(!listed.allows_common_name(None));
    }
}
