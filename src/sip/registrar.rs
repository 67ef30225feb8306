//! The registrar's bindings (RFC 3261 section 10.3), sans-IO: which contacts each agent's
//! phones have registered, until when. The endpoint authenticates a REGISTER (digest, the
//! agent's own account only) and hands its Contact, Expires, Call-ID and CSeq here.
//!
//! - Each contact's lifetime is its `expires` parameter, else the request's Expires header,
//!   else `DEFAULT_EXPIRES` (10.3 step 7), capped at `MAX_EXPIRES`; a non-zero lifetime below
//!   `MIN_EXPIRES` is refused with 423 Interval Too Brief and Min-Expires (10.3 step 7).
//! - `Contact: *` with Expires 0 removes every binding of the agent; `*` with anything else,
//!   or beside other contacts, is a bad request (10.3 step 6).
//! - For an existing contact, a request with the same Call-ID and a CSeq not above the stored
//!   one is out of order and fails, changing nothing (10.3 step 7); another Call-ID (the
//!   phone restarted) replaces the binding.
//! - An agent holds at most `MAX_CONTACTS` bindings (a desk phone, a softphone, a mobile...):
//!   more is refused, so one account cannot fill the server's memory.
//! - A REGISTER without Contact is a query: the current bindings come back (10.3 step 8).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rsipstack::sip::headers::typed::Contact;
use rsipstack::sip::{Param, Scheme};

use super::dialog::contact_uri;

/// A contact's lifetime when neither it nor the request says (RFC 3261 10.2.1.1's one hour).
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Shorter registrations are refused with 423: refreshing every few seconds is load, not
/// reachability.
pub const MIN_EXPIRES: u32 = 60;
/// Longer asks are shortened to this: a phone that vanished is forgotten within two hours.
pub const MAX_EXPIRES: u32 = 7200;
/// Bindings per agent.
pub const MAX_CONTACTS: usize = 10;

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI, where calls for the agent are sent.
    pub uri: String,
    pub expires_at: Instant,
    call_id: String,
    cseq: u32,
}

/// One contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    pub uri: String,
    /// Its own `expires` parameter.
    pub expires: Option<u32>,
}

/// What a REGISTER asks, as read from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// `Contact: *`.
    pub star: bool,
    pub contacts: Vec<ContactSpec>,
    /// The Expires header.
    pub expires: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
}

/// Why a REGISTER changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// 400: malformed Contact or Expires, or `*` misused.
    #[error("{0}")]
    Bad(&'static str),
    /// 423 with Min-Expires.
    #[error("registration interval too brief (at least {MIN_EXPIRES} s)")]
    IntervalTooBrief,
    /// 403: more contacts than an agent may have.
    #[error("at most {MAX_CONTACTS} registered contacts per agent")]
    TooManyContacts,
    /// 500 (RFC 3261 10.3 step 7 says only that the request fails): an older request of the
    /// same registration arrived after a newer one.
    #[error("out of order: a newer REGISTER of this Call-ID was already taken")]
    OutOfOrder,
}

impl RegisterError {
    /// The SIP status and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::Bad(_) => (400, "Bad Request"),
            Self::IntervalTooBrief => (423, "Interval Too Brief"),
            Self::TooManyContacts => (403, "Forbidden"),
            Self::OutOfOrder => (500, "Server Internal Error"),
        }
    }
}

/// Reads the Contact values, Expires, Call-ID and CSeq of a REGISTER.
pub fn read_request<'a>(
    contacts: impl Iterator<Item = &'a str>,
    expires: Option<&str>,
    call_id: &str,
    cseq: &str,
) -> Result<RegisterRequest, RegisterError> {
    let expires = match expires {
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .map_err(|_| RegisterError::Bad("Expires must be a number of seconds"))?,
        ),
        None => None,
    };
    let cseq = cseq
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or(RegisterError::Bad("malformed CSeq"))?;
    let mut request = RegisterRequest {
        star: false,
        contacts: Vec::new(),
        expires,
        call_id: call_id.to_string(),
        cseq,
    };
    for value in contacts.flat_map(split_contacts) {
        if value.trim() == "*" {
            request.star = true;
            continue;
        }
        // rsipstack's typed Contact (docs/architecture.md): a name-addr or a bare URI, and
        // the header parameters apart from the URI's own (RFC 3261 20.10).
        let typed = Contact::parse(value).map_err(|_| RegisterError::Bad("malformed Contact"))?;
        if !matches!(typed.uri.scheme, Some(Scheme::Sip | Scheme::Sips)) {
            return Err(RegisterError::Bad("a Contact must be a sip: or sips: URI"));
        }
        // The binding keeps the phone's own URI text (rsipstack normalises it, dropping a
        // `transport=udp`): requests to the phone go exactly where it asked.
        let uri = contact_uri(value).ok_or(RegisterError::Bad("malformed Contact"))?;
        let expires = (typed.params.iter())
            .find_map(|p| match p {
                Param::Expires(e) => Some(e.value().trim().trim_matches('"').parse::<u32>()),
                _ => None,
            })
            .transpose()
            .map_err(|_| RegisterError::Bad("a Contact's expires must be a number"))?;
        request.contacts.push(ContactSpec { uri, expires });
    }
    if request.star && (!request.contacts.is_empty() || request.expires != Some(0)) {
        return Err(RegisterError::Bad(
            "Contact: * only alone and with Expires: 0",
        ));
    }
    Ok(request)
}

/// The user part of a To or From value's URI (`"Alice" <sip:alice@host>` -> `alice`).
pub fn aor_user(name_addr: &str) -> Option<String> {
    let uri = contact_uri(name_addr)?;
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

/// Splits a Contact header value at the commas between contacts (not those inside quotes or
/// `<...>`: a display name or URI may hold one).
fn split_contacts(value: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut angle) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Every agent's bindings.
#[derive(Debug, Default)]
pub struct Bindings {
    by_agent: BTreeMap<String, Vec<Binding>>,
}

impl Bindings {
    /// Applies a REGISTER authenticated as `agent`; the agent's bindings after it, with the
    /// seconds each has left (the 200's Contact list).
    pub fn apply(
        &mut self,
        agent: &str,
        request: &RegisterRequest,
        now: Instant,
    ) -> Result<Vec<(String, u32)>, RegisterError> {
        self.expire_agent(agent, now);
        if request.star {
            self.by_agent.remove(agent);
            return Ok(Vec::new());
        }
        let mut next = self.by_agent.get(agent).cloned().unwrap_or_default();
        for contact in &request.contacts {
            let asked = contact
                .expires
                .or(request.expires)
                .unwrap_or(DEFAULT_EXPIRES);
            if asked != 0 && asked < MIN_EXPIRES {
                return Err(RegisterError::IntervalTooBrief);
            }
            let existing = next.iter().position(|b| same_contact(&b.uri, &contact.uri));
            if let Some(i) = existing
                && next[i].call_id == request.call_id
                && request.cseq <= next[i].cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
            if asked == 0 {
                if let Some(i) = existing {
                    next.remove(i);
                }
                continue;
            }
            let binding = Binding {
                uri: contact.uri.clone(),
                expires_at: now + Duration::from_secs(asked.min(MAX_EXPIRES).into()),
                call_id: request.call_id.clone(),
                cseq: request.cseq,
            };
            match existing {
                Some(i) => next[i] = binding,
                None => next.push(binding),
            }
        }
        if next.len() > MAX_CONTACTS {
            return Err(RegisterError::TooManyContacts);
        }
        if next.is_empty() {
            self.by_agent.remove(agent);
        } else {
            self.by_agent.insert(agent.to_string(), next);
        }
        Ok(self.current(agent, now))
    }

    /// An agent's bindings with the seconds each has left, soonest to expire last.
    pub fn current(&self, agent: &str, now: Instant) -> Vec<(String, u32)> {
        let mut list: Vec<(String, u32)> = (self.by_agent.get(agent).into_iter().flatten())
            .filter(|b| b.expires_at > now)
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now);
                (b.uri.clone(), left.as_secs().max(1) as u32)
            })
            .collect();
        list.sort_by_key(|(_, left)| std::cmp::Reverse(*left));
        list
    }

    fn expire_agent(&mut self, agent: &str, now: Instant) {
        if let Some(list) = self.by_agent.get_mut(agent) {
            list.retain(|b| b.expires_at > now);
            if list.is_empty() {
                self.by_agent.remove(agent);
            }
        }
    }

    /// Drops expired bindings; the agents whose bindings changed.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = (self.by_agent.iter())
            .filter(|(_, list)| list.iter().any(|b| b.expires_at <= now))
            .map(|(agent, _)| agent.clone())
            .collect();
        for agent in &due {
            self.expire_agent(agent, now);
        }
        due
    }

    /// Drops every binding of agents no longer in the agents file; those agents.
    pub fn keep_only(&mut self, known: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = (self.by_agent.keys())
            .filter(|a| !known(a))
            .cloned()
            .collect();
        for agent in &gone {
            self.by_agent.remove(agent);
        }
        gone
    }

    /// When the next binding expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        (self.by_agent.values().flatten())
            .map(|b| b.expires_at)
            .min()
    }

    /// Agents with at least one binding.
    pub fn registered(&self) -> usize {
        self.by_agent.len()
    }

    /// Their ids.
    pub fn registered_agents(&self) -> Vec<String> {
        self.by_agent.keys().cloned().collect()
    }
}

/// RFC 3261 19.1.4 compares URIs field by field; the phones re-send their Contact as they
/// sent it, so a case-insensitive match of scheme, host and parameters is what matters here.
fn same_contact(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(contact: &str, expires: Option<&str>, call_id: &str, cseq: u32) -> RegisterRequest {
        let contacts: Vec<&str> = if contact.is_empty() {
            Vec::new()
        } else {
            vec![contact]
        };
        read_request(
            contacts.into_iter(),
            expires,
            call_id,
            &format!("{cseq} REGISTER"),
        )
        .unwrap()
    }

    #[test]
    fn contacts_are_read_with_their_own_expires_and_commas_inside_names_are_kept() {
        let r = read_request(
            [
                r#""Smith, Alice" <sip:alice@10.0.0.5:5062;transport=tcp>;expires=120, <sip:alice@10.0.0.6>"#,
                "sip:alice@10.0.0.7;expires=300",
            ]
            .into_iter(),
            Some("600"),
            "c1",
            "7 REGISTER",
        )
        .unwrap();
        assert_eq!(r.expires, Some(600));
        assert_eq!(r.cseq, 7);
        assert_eq!(
            r.contacts,
            vec![
                ContactSpec {
                    uri: "sip:alice@10.0.0.5:5062;transport=tcp".into(),
                    expires: Some(120)
                },
                ContactSpec {
                    uri: "sip:alice@10.0.0.6".into(),
                    expires: None
                },
                ContactSpec {
                    uri: "sip:alice@10.0.0.7".into(),
                    expires: Some(300)
                },
            ]
        );
        for (contacts, expires, why) in [
            (vec!["*"], Some("3600"), "star needs Expires 0"),
            (vec!["*", "<sip:a@h>"], Some("0"), "star alone"),
            (vec!["<http://a@h>"], None, "sip URIs only"),
            (vec!["<sip:a@h>;expires=soon"], None, "numeric expires"),
        ] {
            assert!(
                matches!(
                    read_request(contacts.into_iter(), expires, "c", "1 REGISTER"),
                    Err(RegisterError::Bad(_))
                ),
                "{why}"
            );
        }
        assert!(read_request(["*"].into_iter(), Some("0"), "c", "1 REGISTER").is_ok());
        assert!(read_request(std::iter::empty(), Some("x"), "c", "1 REGISTER").is_err());
    }

    #[test]
    fn bindings_follow_rfc_3261_section_10_3() {
        let t0 = Instant::now();
        let mut b = Bindings::default();
        // A new binding, with the default lifetime capped by the request's Expires.
        let now = b
            .apply(
                "alice",
                &request("<sip:alice@10.0.0.5>", Some("600"), "c1", 1),
                t0,
            )
            .unwrap();
        assert_eq!(now, vec![("sip:alice@10.0.0.5".to_string(), 600)]);
        // A second phone; a query (no Contact) lists both.
        b.apply("alice", &request("<sip:alice@10.0.0.9>", None, "c2", 1), t0)
            .unwrap();
        let listed = b.apply("alice", &request("", None, "c3", 1), t0).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], ("sip:alice@10.0.0.9".to_string(), 3600));
        // Too brief is refused and changes nothing; too long is shortened.
        assert_eq!(
            b.apply(
                "alice",
                &request("<sip:alice@10.0.0.5>", Some("30"), "c1", 2),
                t0
            ),
            Err(RegisterError::IntervalTooBrief)
        );
        let long = b
            .apply(
                "bob",
                &request("<sip:bob@10.0.0.8>", Some("86400"), "b1", 1),
                t0,
            )
            .unwrap();
        assert_eq!(long[0].1, MAX_EXPIRES);
        // A late copy of an older request of the same registration fails.
        assert_eq!(
            b.apply(
                "alice",
                &request("<sip:alice@10.0.0.5>", Some("600"), "c1", 1),
                t0
            ),
            Err(RegisterError::OutOfOrder)
        );
        // The refresh extends it.
        let t1 = t0 + Duration::from_secs(500);
        b.apply(
            "alice",
            &request("<sip:alice@10.0.0.5>", Some("600"), "c1", 2),
            t1,
        )
        .unwrap();
        assert_eq!(b.next_expiry(), Some(t1 + Duration::from_secs(600)));
        // Un-register one contact, then expiry removes the other.
        let left = b
            .apply(
                "alice",
                &request("<sip:alice@10.0.0.5>", Some("0"), "c1", 3),
                t1,
            )
            .unwrap();
        assert_eq!(left, vec![("sip:alice@10.0.0.9".to_string(), 3100)]);
        let t2 = t0 + Duration::from_secs(3600);
        assert_eq!(b.expire(t2), vec!["alice".to_string()]);
        assert!(b.current("alice", t2).is_empty());
        // Contact: * removes everything; agents gone from the file lose their bindings.
        b.apply("alice", &request("<sip:alice@10.0.0.5>", None, "c4", 1), t2)
            .unwrap();
        let star = read_request(["*"].into_iter(), Some("0"), "c4", "2 REGISTER").unwrap();
        assert!(b.apply("alice", &star, t2).unwrap().is_empty());
        assert_eq!(b.registered(), 1);
        assert_eq!(b.keep_only(|a| a == "alice"), vec!["bob".to_string()]);
        assert_eq!(b.registered(), 0);
    }

    #[test]
    fn real_phones_contacts_are_read_and_bad_ones_refused() {
        let one = |contact: &str| {
            read_request([contact].into_iter(), None, "c1", "1 REGISTER").map(|r| r.contacts)
        };
        // linphone: instance and reg-id parameters, a quoted URN with angle brackets.
        let linphone = r#"<sip:alice@192.0.2.5:5062;transport=udp>;expires=300;+sip.instance="<urn:uuid:6f1c-77>";reg-id=1"#;
        assert_eq!(
            one(linphone).unwrap(),
            [ContactSpec {
                uri: "sip:alice@192.0.2.5:5062;transport=udp".into(),
                expires: Some(300)
            }],
            "the phone's own URI text is kept"
        );
        // IPv6 (RFC 5118), sips:, a display name.
        let v6 = r#""Alice" <sips:alice@[2001:db8::10]:5061>;expires=60"#;
        assert_eq!(one(v6).unwrap()[0].uri, "sips:alice@[2001:db8::10]:5061");
        assert_eq!(one(v6).unwrap()[0].expires, Some(60));
        // Refused: not a SIP URI, a non-numeric expires, no closing bracket.
        for bad in [
            "<tel:+15551234>",
            "<sip:alice@192.0.2.5>;expires=soon",
            "<sip:alice@192.0.2.5;expires=60",
        ] {
            assert!(
                matches!(one(bad), Err(RegisterError::Bad(_))),
                "{bad}: {:?}",
                one(bad)
            );
        }
    }

    #[test]
    fn an_agent_holds_at_most_max_contacts() {
        let t0 = Instant::now();
        let mut b = Bindings::default();
        for i in 0..MAX_CONTACTS {
            let contact = format!("<sip:carol@10.0.1.{i}>");
            b.apply("carol", &request(&contact, None, &format!("k{i}"), 1), t0)
                .unwrap();
        }
        assert_eq!(
            b.apply("carol", &request("<sip:carol@10.0.2.1>", None, "k", 1), t0),
            Err(RegisterError::TooManyContacts)
        );
        assert_eq!(b.current("carol", t0).len(), MAX_CONTACTS);
    }
}
