//! `http`: call a backend, map JSON fields of the reply into variables.
//!
//! ```yaml
//! lookup:
//!   http:
//!     url: "{{orders_api}}/orders/{{order_number}}"
//!     method: GET               # or POST (with `body`)
//!     timeout_ms: 2000
//!     filler: one_moment        # said while waiting
//!     set: { status: status, eta: delivery.eta }   # variable: JSON path
//!   next: say_status
//!   not_found: no_such_order    # optional: HTTP 404 (an answer, not a failure)
//!   error: lookup_failed        # timeout, connection error, other non-2xx, bad JSON
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, Waiting};
use crate::dialplan::model::{Ref, Speech};
use crate::dialplan::read::{Ctx, MapReader, fill, number, text};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    pub url: String,
    pub url_pos: Pos,
    pub method: String,
    pub body: Option<String>,
    pub timeout_ms: u64,
    pub filler: Option<Speech>,
    /// (variable, JSON path).
    pub set: Vec<(String, String)>,
    pub not_found: Option<Ref>,
    pub error: Ref,
}

impl NodeKind for Http {
    fn enter(
        &self,
        id: &str,
        _next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        if let Some(f) = &self.filler {
            call.say(actions, &f.text, true);
        }
        let url = fill(&self.url, |v| call.vars.get(v).map(|s| percent_encode(s)));
        let body = self
            .body
            .as_ref()
            .map(|b| fill(b, |v| call.vars.get(v).cloned()));
        actions.push(Action::Http {
            method: self.method.clone(),
            url,
            body,
            timeout_ms: self.timeout_ms,
        });
        call.waiting = Waiting::Http(id.to_string());
        Walk::Wait
    }

    fn speech(&self) -> Vec<&Speech> {
        self.filler.iter().collect()
    }

    /// The URL and body, filled from variables.
    fn templates(&self) -> Vec<(String, Pos)> {
        std::iter::once(&self.url)
            .chain(&self.body)
            .map(|t| (t.clone(), self.url_pos))
            .collect()
    }

    /// The variables the reply sets.
    fn sets(&self) -> Vec<String> {
        self.set.iter().map(|(k, _)| k.clone()).collect()
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        self.not_found.iter_mut().chain([&mut self.error]).collect()
    }
}

/// Checks a URL with `{{variables}}` in it: scheme, host, no spaces.
pub fn url_problem(url: &str) -> Option<&'static str> {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if let Some(r) = url.strip_prefix("https://") {
        r
    } else if url.starts_with("{{") {
        // The whole base comes from a variable (e.g. `{{orders_api}}/orders/...`).
        return url.contains(' ').then_some("a URL cannot contain spaces");
    } else {
        return Some("a URL starts with http:// or https://");
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty() {
        return Some("the URL has no host");
    }
    if url.contains(' ') {
        return Some("a URL cannot contain spaces");
    }
    None
}

pub fn read(value: &Yaml, node: &mut MapReader, cx: &mut Ctx) -> Option<Http> {
    let mut m = MapReader::new(value, "http", cx.p);
    let url = m.require("url", cx.p).and_then(|y| text(y, "url", cx.p));
    let method = m
        .get("method")
        .and_then(|y| text(y, "method", cx.p))
        .map(|(t, pos)| {
            let up = t.to_uppercase();
            if up != "GET" && up != "POST" {
                cx.p.add(pos, format!("method `{t}`: GET or POST"), "");
            }
            up
        })
        .unwrap_or_else(|| "GET".into());
    let body = m
        .get("body")
        .and_then(|y| text(y, "body", cx.p))
        .map(|(t, _)| t);
    let timeout_ms = m
        .get("timeout_ms")
        .and_then(|y| number(y, "timeout_ms", cx.p))
        .unwrap_or(3000);
    let filler = m.get("filler").and_then(|y| cx.speech(y, "filler"));
    let mut set = Vec::new();
    if let Some(y) = m.get("set") {
        let s = MapReader::new(y, "set", cx.p);
        for (k, v) in s.entries() {
            if let Some((path, _)) = text(v, "JSON path", cx.p) {
                set.push((k.name.clone(), path));
            }
        }
    }
    m.finish(&[], cx.p);
    let not_found = node
        .get("not_found")
        .and_then(|y| cx.reference(y, "not_found"));
    let error = node.get("error").and_then(|y| cx.reference(y, "error"));
    if error.is_none() {
        cx.p.add(
            node.pos,
            "an http node needs `error: <node>`",
            "say something useful when the backend is slow or down, e.g. offer a human",
        );
    }
    let (url, url_pos) = url?;
    if let Some(problem) = url_problem(&url) {
        cx.p.add(
            url_pos,
            format!("malformed URL `{url}`: {problem}"),
            "e.g. http://127.0.0.1:8089/orders/{{order_number}}",
        );
    }
    Some(Http {
        url,
        url_pos,
        method,
        body,
        timeout_ms,
        filler,
        set,
        not_found,
        error: error?,
    })
}

/// Escapes what a URL cannot carry as is (spaces, non-ASCII, `#`, quotes); URL punctuation is
/// kept, so a variable may hold a whole base address (`http://host:port`).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b':'
            | b'/'
            | b'?'
            | b'&'
            | b'='
            | b'%'
            | b'@'
            | b'+'
            | b','
            | b';' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
