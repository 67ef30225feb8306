//! The client dialplan `http` nodes reach their backends with: HTTP and HTTPS through `ureq`
//! on rustls, certificates checked by default (against Mozilla's roots built in, or the
//! certificate authority a backend entry names), and each backend's headers and credentials
//! added here, from the server config and the environment. They never enter the dialplan, so
//! they never reach a call record, the dialplan's change history or a log line.
//!
//! ```yaml
//! backends:                                  # in the server config (src/config.rs)
//!   - url: https://crm.example.com/api/      # requests whose URL starts with this
//!     ca: /etc/voxnav/crm-ca.pem             # trust only this CA (PEM) for it
//!     headers: { Authorization: "Bearer ${CRM_TOKEN}" }   # ${NAME}: the environment's
//!   - url: https://orders.example.com/
//!     basic: { user: ivr, password: "${ORDERS_PASSWORD}" }
//! ```
//!
//! Redirects are not followed (a 3xx is the node's `error`): following one would carry the
//! backend's credentials to wherever it points. Proxy variables in the environment are
//! ignored: backends are reached directly.

use std::path::PathBuf;
use std::time::Duration;

/// The largest reply body read (a backend's JSON answer, not a download).
const MAX_BODY: u64 = 1 << 20;

/// One backend as the config describes it (secrets already taken from the environment).
#[derive(Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Requests whose URL starts with this get this entry's trust and headers.
    pub prefix: String,
    /// The certificate authority (PEM) its certificates must chain to; None: Mozilla's roots.
    pub ca: Option<PathBuf>,
    /// Headers sent with every request to it (credentials among them).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for BackendConfig {
    /// Header values are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("BackendConfig")
            .field("prefix", &self.prefix)
            .field("ca", &self.ca)
            .field("headers", &names)
            .finish()
    }
}

/// Why the backends cannot be set up (at start: the server does not start half-configured).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {prefix}: certificate authority {path}: {reason}")]
    Ca {
        prefix: String,
        path: PathBuf,
        reason: String,
    },
}

/// A backend entry with its own client (its own trust).
struct Route {
    prefix: String,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
}

/// The clients of every configured backend, and one for any other URL.
pub struct Backends {
    routes: Vec<Route>,
    other: ureq::Agent,
}

impl Default for Backends {
    /// No entries: any URL, Mozilla's roots, no headers.
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            other: agent(ureq::tls::RootCerts::WebPki),
        }
    }
}

fn agent(roots: ureq::tls::RootCerts) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(roots)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        // Statuses are answers (404 is the node's `not_found`), not errors.
        .http_status_as_error(false)
        .max_redirects(0)
        // Backends are reached directly: an HTTP_PROXY in the environment (set for package
        // downloads, say) must not silently reroute calls' lookups.
        .proxy(None)
        .user_agent(concat!("voxnav/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

impl Backends {
    /// Reads each entry's certificate authority; the longest matching prefix wins.
    pub fn new(configs: &[BackendConfig]) -> Result<Self, BackendError> {
        let mut routes = Vec::new();
        for c in configs {
            let roots = match &c.ca {
                None => ureq::tls::RootCerts::WebPki,
                Some(path) => {
                    let fail = |reason: String| BackendError::Ca {
                        prefix: c.prefix.clone(),
                        path: path.clone(),
                        reason,
                    };
                    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
                    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                        .filter_map(|item| match item {
                            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        })
                        .collect::<Result<_, _>>()
                        .map_err(|e| fail(e.to_string()))?;
                    if certs.is_empty() {
                        return Err(fail("no certificate in the file".into()));
                    }
                    ureq::tls::RootCerts::new_with_certs(&certs)
                }
            };
            routes.push(Route {
                prefix: c.prefix.clone(),
                headers: c.headers.clone(),
                agent: agent(roots),
            });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Self {
            routes,
            other: agent(ureq::tls::RootCerts::WebPki),
        })
    }

    /// One request (GET, or POST with a JSON body), within `timeout` in all: (status, body),
    /// or why it failed (for the log: no header values in it).
    pub fn fetch(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url}: not an http:// or https:// URL"));
        }
        let route = self.routes.iter().find(|r| url.starts_with(&r.prefix));
        let (agent, headers) = match route {
            Some(r) => (&r.agent, r.headers.as_slice()),
            None => (&self.other, &[][..]),
        };
        let timeout = Some(timeout);
        let response = match method {
            "GET" => {
                let mut request = agent.get(url).header("Accept", "application/json");
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                request.config().timeout_global(timeout).build().call()
            }
            "POST" => {
                let mut request = agent
                    .post(url)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json");
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                (request.config().timeout_global(timeout).build()).send(body.unwrap_or(""))
            }
            other => return Err(format!("method {other}: GET or POST")),
        };
        let mut response = response.map_err(|e| describe(url, &e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| describe(url, &e))?;
        Ok((status, text))
    }
}

/// A failure as the log shows it: where, and what (a certificate nobody vouches for, a
/// timeout, a refused connection).
fn describe(url: &str, e: &ureq::Error) -> String {
    // Only the scheme, host and port: a path or query may carry a caller's details.
    let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    match e {
        ureq::Error::Timeout(_) => format!("{origin}: timed out"),
        other => format!("{origin}: {other}"),
    }
}

/// `${NAME}` in a config value replaced by the environment variable NAME; the names that
/// are not set come back as the error.
pub fn expand_env(
    value: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let (mut out, mut missing, mut rest) = (String::new(), Vec::new(), value);
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        match env(name) {
            Some(v) => out.push_str(&v),
            None => missing.push(name.to_string()),
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// `user:password` as an HTTP Basic credential (RFC 7617 section 2: base64 of the pair).
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_values_and_basic_credentials() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(expand_env("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand_env("plain", env).unwrap(), "plain");
        assert_eq!(
            expand_env("${A}-${TOKEN}-${B}", env).unwrap_err(),
            vec!["A".to_string(), "B".to_string()]
        );
        // RFC 7617 section 2's example.
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_bad_urls_are_refused() {
        let c = BackendConfig {
            prefix: "https://crm/".into(),
            ca: None,
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("Authorization") && !shown.contains("s3cret"),
            "{shown}"
        );
        let b = Backends::new(&[c]).unwrap();
        assert!(
            b.fetch("GET", "ftp://x/", None, Duration::from_secs(1))
                .is_err()
        );
        assert!(
            b.fetch("PUT", "http://127.0.0.1:9/", None, Duration::from_secs(1))
                .is_err()
        );
        let missing = Backends::new(&[BackendConfig {
            prefix: "https://x/".into(),
            ca: Some("/nonexistent/ca.pem".into()),
            headers: vec![],
        }]);
        assert!(matches!(missing, Err(BackendError::Ca { .. })));
    }
}
