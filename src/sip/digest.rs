//! SIP digest authentication (RFC 3261 section 22.4 with RFC 8760: SHA-256, and MD5 for older
//! peers), as a server that challenges peers, and the answer a client computes.
//!
//! - Credentials are kept as HA1 hashes (`H(user:realm:password)`), never as passwords.
//! - Nonces are stateless and keyed: `TIMESTAMP.MAC`, the MAC an HMAC-SHA-256 of the timestamp
//!   under a secret drawn at start, so only nonces this server issued in the last
//!   `NONCE_LIFETIME` are accepted; an older one gets `stale=true` (the client retries at once
//!   with a fresh nonce, RFC 7616 section 3.3).
//! - `qop=auth` is required, and the nonce count must grow for each nonce: a replayed
//!   request (same nonce and count) is refused.
//! - An unknown user, a wrong password and a malformed answer get the same fresh challenge and
//!   take the same work (a dummy hash is checked for an unknown user): no user enumeration.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long a nonce stays good.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonces whose counts are remembered (a bound on memory; the oldest is forgotten first, and
/// a forgotten nonce is stale soon anyway).
const MAX_TRACKED_NONCES: usize = 10_000;

/// A digest algorithm (RFC 8760 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Md5 => "MD5",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "SHA-256" => Some(Self::Sha256),
            "MD5" => Some(Self::Md5),
            _ => None,
        }
    }

    /// The lower-case hex digest of `text`.
    pub fn hash(self, text: &str) -> String {
        match self {
            Self::Sha256 => hex(&Sha256::digest(text.as_bytes())),
            Self::Md5 => hex(&md5::Md5::digest(text.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `H(user:realm:password)`: what a server keeps instead of the password.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&format!("{user}:{realm}:{password}"))
}

/// The `response` value for `qop=auth` (RFC 7616 section 3.4.1).
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

/// The parameters of a `Digest ...` header value (names lower-cased, quotes removed); None if
/// the scheme is not Digest.
pub fn params(value: &str) -> Option<BTreeMap<String, String>> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if name.trim().is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut v = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '\\' => v.push(chars.next()?),
                    '"' => break,
                    c => v.push(c),
                }
            }
        } else {
            v = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(name.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    Some(out)
}

/// What a client sends back to a challenge (`Authorization` value), or None if the challenge
/// is not one it can answer.
pub fn answer(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    let p = params(challenge)?;
    let algorithm = Algorithm::parse(p.get("algorithm").map_or("MD5", String::as_str))?;
    let (realm, nonce) = (p.get("realm")?, p.get("nonce")?);
    let nc = format!("{nc:08x}");
    let ha1 = ha1(algorithm, user, realm, password);
    let r = response(algorithm, &ha1, nonce, &nc, cnonce, method, uri);
    let opaque = p
        .get("opaque")
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    Some(format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{r}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}{opaque}",
        algorithm.name()
    ))
}

/// One user's stored hashes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserHashes {
    pub sha256: Option<String>,
    pub md5: Option<String>,
}

impl std::fmt::Debug for UserHashes {
    /// An HA1 opens the account as well as the password does: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserHashes")
            .field("sha256", &self.sha256.is_some())
            .field("md5", &self.md5.is_some())
            .finish()
    }
}

impl UserHashes {
    /// Both hashes from a password.
    pub fn from_password(user: &str, realm: &str, password: &str) -> Self {
        Self {
            sha256: Some(ha1(Algorithm::Sha256, user, realm, password)),
            md5: Some(ha1(Algorithm::Md5, user, realm, password)),
        }
    }

    fn get(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Sha256 => self.sha256.as_deref(),
            Algorithm::Md5 => self.md5.as_deref(),
        }
    }
}

/// The accounts and realm a server checks against.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DigestConfig {
    pub realm: String,
    pub users: BTreeMap<String, UserHashes>,
    /// Offered in this order of preference (RFC 8760 section 2.4: SHA-256 first).
    pub algorithms: Vec<Algorithm>,
    /// The nonces' key: random bytes drawn at start (a restart invalidates every nonce).
    pub secret: [u8; 32],
}

impl std::fmt::Debug for DigestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestConfig")
            .field("realm", &self.realm)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The outcome of checking an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The user proved who they are.
    Accepted(String),
    /// Right credentials on a nonce that has expired: challenge again with `stale=true`.
    Stale,
    /// Anything else (unknown user, wrong password, replay, malformed): challenge again.
    Refused,
}

/// Issues nonces and checks answers.
pub struct Verifier {
    config: DigestConfig,
    secret: [u8; 32],
    epoch: Instant,
    /// Nonces issued so far: each nonce is unique, so two phones challenged in the same
    /// millisecond do not share one (the second's first answer would look like a replay).
    issued: std::sync::atomic::AtomicU64,
    /// The highest nonce count accepted per nonce, with the order nonces were first seen.
    counts: HashMap<String, u32>,
    order: std::collections::VecDeque<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("realm", &self.config.realm)
            .field("users", &self.config.users.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(config: DigestConfig, now: Instant) -> Self {
        Self {
            secret: config.secret,
            config,
            epoch: now,
            issued: std::sync::atomic::AtomicU64::new(0),
            counts: HashMap::new(),
            order: Default::default(),
        }
    }

    /// New accounts (the agents file changed); nonces already issued stay good, and so does
    /// the memory of the counts they were used with.
    pub fn set_accounts(&mut self, config: DigestConfig) {
        self.config = DigestConfig {
            secret: self.secret,
            ..config
        };
    }

    fn mac(&self, stamp: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(stamp.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }

    /// A fresh nonce: when it was issued (ms since the verifier started) and a serial
    /// number, with their MAC.
    pub fn nonce(&self, now: Instant) -> String {
        let serial = (self.issued).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stamp = format!(
            "{:x}-{serial:x}",
            now.saturating_duration_since(self.epoch).as_millis()
        );
        format!("{stamp}.{}", self.mac(&stamp))
    }

    /// `WWW-Authenticate` values, most preferred algorithm first.
    pub fn challenges(&self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        let stale = if stale { ", stale=true" } else { "" };
        self.config
            .algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.config.realm,
                    a.name()
                )
            })
            .collect()
    }

    /// Whether a nonce is ours: Some(fresh) when its MAC is right, None when forged.
    fn nonce_age(&self, nonce: &str, now: Instant) -> Option<Duration> {
        let (stamp, mac) = nonce.split_once('.')?;
        let expected = self.mac(stamp);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let millis = stamp.split_once('-').map_or(stamp, |(ms, _)| ms);
        let issued = Duration::from_millis(u64::from_str_radix(millis, 16).ok()?);
        Some(
            now.saturating_duration_since(self.epoch)
                .saturating_sub(issued),
        )
    }

    /// Checks an `Authorization` value for a request with `method`.
    pub fn check(&mut self, authorization: &str, method: &str, now: Instant) -> Verdict {
        let Some(p) = params(authorization) else {
            return Verdict::Refused;
        };
        let field = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let Some(algorithm) = Algorithm::parse(p.get("algorithm").map_or("MD5", String::as_str))
        else {
            return Verdict::Refused;
        };
        let (user, nonce, nc_text) = (field("username"), field("nonce"), field("nc"));
        // Unknown users are checked against a dummy hash: the same work, the same answer.
        let dummy = algorithm.hash("no such user");
        let stored = self
            .config
            .users
            .get(user)
            .and_then(|u| u.get(algorithm))
            .filter(|_| self.config.algorithms.contains(&algorithm));
        let ha1 = stored.unwrap_or(&dummy);
        let expected = response(
            algorithm,
            ha1,
            nonce,
            nc_text,
            field("cnonce"),
            method,
            field("uri"),
        );
        let right = constant_time_eq(expected.as_bytes(), field("response").as_bytes())
            && stored.is_some()
            && field("realm") == self.config.realm
            && field("qop").eq_ignore_ascii_case("auth");
        let Ok(nc) = u32::from_str_radix(nc_text, 16) else {
            return Verdict::Refused;
        };
        match self.nonce_age(nonce, now) {
            None => Verdict::Refused,
            Some(_) if !right => Verdict::Refused,
            Some(age) if age > NONCE_LIFETIME => Verdict::Stale,
            Some(_) => {
                let last = self.counts.get(nonce).copied().unwrap_or(0);
                if nc <= last {
                    return Verdict::Refused; // a replay
                }
                if !self.counts.contains_key(nonce) {
                    self.order.push_back(nonce.to_string());
                    if self.order.len() > MAX_TRACKED_NONCES
                        && let Some(old) = self.order.pop_front()
                    {
                        self.counts.remove(&old);
                    }
                }
                self.counts.insert(nonce.to_string(), nc);
                Verdict::Accepted(user.to_string())
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 section 3.9.1's example, with both algorithms.
    #[test]
    fn rfc_7616_example_responses() {
        let (user, realm, password) = ("Mufasa", "http-auth@example.org", "Circle of Life");
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (algorithm, expected) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = ha1(algorithm, user, realm, password);
            let r = response(
                algorithm,
                &ha1,
                nonce,
                "00000001",
                cnonce,
                "GET",
                "/dir/index.html",
            );
            assert_eq!(r, expected, "{algorithm:?}");
        }
        let p = params(r#"Digest realm="a \"b\"", nonce=xyz, qop="auth,auth-int""#).unwrap();
        assert_eq!(p["realm"], "a \"b\"");
        assert_eq!(p["nonce"], "xyz");
        assert_eq!(p["qop"], "auth,auth-int");
        assert!(params("Basic abc").is_none());
    }

    fn verifier(now: Instant) -> Verifier {
        let realm = "voxnav";
        Verifier::new(
            DigestConfig {
                realm: realm.into(),
                users: [(
                    "pbx".to_string(),
                    UserHashes::from_password("pbx", realm, "s3cret"),
                )]
                .into(),
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
                secret: [7; 32],
            },
            now,
        )
    }

    #[test]
    fn the_right_answer_is_accepted_once_and_everything_else_gets_the_same_refusal() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        let challenges = v.challenges(t0, false);
        assert!(
            challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5")
        );
        let uri = "sip:4000@127.0.0.1";
        // Each algorithm on a nonce of its own (counts are per nonce, whatever the algorithm).
        let md5 = v.challenges(t0 + Duration::from_millis(1), false)[1].clone();
        for challenge in [&challenges[0], &md5] {
            let good = answer(challenge, "INVITE", uri, "pbx", "s3cret", "c1", 1).unwrap();
            assert_eq!(
                v.check(&good, "INVITE", t0),
                Verdict::Accepted("pbx".into())
            );
            // The same answer again is a replay; a higher count is a new request.
            assert_eq!(v.check(&good, "INVITE", t0), Verdict::Refused);
            let next = answer(challenge, "INVITE", uri, "pbx", "s3cret", "c1", 2).unwrap();
            assert_eq!(
                v.check(&next, "INVITE", t0),
                Verdict::Accepted("pbx".into())
            );
        }
        let challenge = &v.challenges(t0, false)[0];
        let wrong = answer(challenge, "INVITE", uri, "pbx", "guess", "c1", 1).unwrap();
        let nobody = answer(challenge, "INVITE", uri, "nobody", "s3cret", "c1", 1).unwrap();
        assert_eq!(v.check(&wrong, "INVITE", t0), Verdict::Refused);
        assert_eq!(v.check(&nobody, "INVITE", t0), Verdict::Refused);
        // Another method than the one answered for, a forged nonce, garbage.
        let good = answer(challenge, "INVITE", uri, "pbx", "s3cret", "c9", 1).unwrap();
        assert_eq!(v.check(&good, "BYE", t0), Verdict::Refused);
        let nonce = params(challenge).unwrap()["nonce"].clone();
        let forged = answer(
            &challenge.replace(&nonce, "0-0.00000000000000000000000000000000"),
            "INVITE",
            uri,
            "pbx",
            "s3cret",
            "c1",
            1,
        )
        .unwrap();
        assert_eq!(v.check(&forged, "INVITE", t0), Verdict::Refused);
        assert_eq!(v.check("Digest ,,,=", "INVITE", t0), Verdict::Refused);
        // An expired nonce with the right password: stale, so the client retries at once.
        let later = t0 + NONCE_LIFETIME + Duration::from_secs(1);
        let old = answer(challenge, "INVITE", uri, "pbx", "s3cret", "c2", 1).unwrap();
        assert_eq!(v.check(&old, "INVITE", later), Verdict::Stale);
        assert!(v.challenges(later, true)[0].ends_with(", stale=true"));
        // A nonce from another server (another secret) is not ours.
        let other = verifier(t0 + Duration::from_secs(1));
        let theirs = answer(
            &other.challenges(t0, false)[0],
            "INVITE",
            uri,
            "pbx",
            "s3cret",
            "c",
            1,
        );
        let mut v2 = Verifier::new(
            DigestConfig {
                secret: [8; 32],
                ..v.config.clone()
            },
            t0,
        );
        assert_eq!(v2.check(&theirs.unwrap(), "INVITE", t0), Verdict::Refused);
        // Two phones challenged in the same millisecond get nonces of their own: each one's
        // first answer counts (a shared nonce made the second look like a replay).
        let (first, second) = (v.challenges(t0, false), v.challenges(t0, false));
        assert_ne!(first[0], second[0]);
        for c in [&first[0], &second[0]] {
            let a = answer(c, "INVITE", uri, "pbx", "s3cret", "c1", 1).unwrap();
            assert_eq!(v.check(&a, "INVITE", t0), Verdict::Accepted("pbx".into()));
        }
        // Hashes are never printed.
        assert!(!format!("{:?}", v.config).contains(&ha1(
            Algorithm::Md5,
            "pbx",
            "voxnav",
            "s3cret"
        )));
    }
}
