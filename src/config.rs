//! The server's configuration file (`voxnav serve --config FILE`), YAML read with positions:
//!
//! ```yaml
//! sip:
//!   listen: 0.0.0.0:5060     # UDP and TCP, IPv4 or IPv6
//!   max_calls: 100           # more get 503 with Retry-After
//!   ring_ms: 0               # ring (180) this long before answering
//!   tls:                     # SIP over TLS as well (RFC 3261 26.2.1); the files are
//!     listen: 0.0.0.0:5061   # reloaded when they change
//!     cert: /etc/voxnav/sip-chain.pem
//!     key: /etc/voxnav/sip-key.pem
//!   tls_required_from: [203.0.113.0/24]    # these trunks must call over TLS (403 otherwise)
//!   trunks: [192.0.2.0/24]   # who may call (others get 403); their P-Asserted-Identity is
//!                            # believed. Absent: everyone may call
//!   digest:                  # or: peers outside the trunks prove who they are (401 challenge)
//!     realm: voxnav
//!     algorithms: [SHA-256, MD5]   # offered, in this order (default: both)
//!     users:                 # H(user:realm:password) as hex, or the password from the environment
//!       pbx-east: { sha256: "...", md5: "..." }
//!       pbx-west: { password: "${PBX_WEST_PASSWORD}" }
//!   register:                # register voxnav to the carrier's or PBX's registrar
//!     registrar: 192.0.2.50:5060
//!     domain: carrier.example  # Request-URI sip:DOMAIN, address of record sip:USER@DOMAIN
//!     user: voxnav
//!     password: "${TRUNK_PASSWORD}"   # from the environment only
//!     expires: 600             # asked for; refreshed at half what is granted
//!     retry_min_s: 30          # after a failure: 30 s, doubling up to retry_max_s
//!     retry_max_s: 1800
//! hotlines:                  # the dialled number (Request-URI user, else To) picks the dialplan
//!   "4000": dialplans/demo.yaml
//!   "4001": dialplans/hotline-zh.yaml
//!   default: dialplans/demo.yaml   # numbers not listed; without it they get 404
//! media:
//!   rtp_ports: 10000-20000   # even RTP ports, RTCP on the next odd one
//!   threads: 1               # media driver threads (each owns a share of the calls)
//!   srtp: optional           # SRTP with SDES keys when offered (RTP/SAVP); `required`
//!                            # refuses plain offers (488), `off` refuses SRTP-only ones
//!   srtp_required_from: [203.0.113.0/24]   # these trunks' calls must be SRTP whatever
//!                                          # `srtp` says
//! transfer:                  # where dialplan transfers ring (a bridge to a SIP phone)
//!   default: sip:desk@192.0.2.10        # the seat for queues not listed
//!   queues:
//!     billing: sip:billing@192.0.2.11
//!   refer:                   # queues the PBX the call came through takes back by SIP REFER
//!     support: sip:support@192.0.2.30   # (RFC 3515: nothing is bridged through voxnav)
//!   ring_timeout_s: 20       # then the caller goes back to the dialplan's fallback
//!   queue_wait_s: 60         # a queue of the agents file with nobody free: the caller
//!                            # waits this long (hold audio) for an agent, 0: fallback at once
//!   announce_every_s: 30     # a waiting caller hears their place (and the estimated wait)
//!                            # 3 s into the wait, then this often; 0: never
//!   agent_silence_s: 10      # an agent's phone that sends no RTP this long mid-call (and
//!                            # has not put the call on hold) is gone: the caller hears an
//!                            # apology and goes back to the head of the queue, or to the
//!                            # dialplan's fallback; 0: never
//!   assist: true             # agent assist: what a caller says to an agent is recognised
//!                            # and matched against the knowledge base for the agent's
//!                            # desktop (a recognition per utterance); false: off
//!   warm: false              # warm transfer: the agent who answers first hears who calls
//!                            # and why (the product voice), then the caller is put through
//!   messages_dir: records/messages   # where `voicemail` nodes save messages (QUEUE/CALL.wav)
//!   callback_uri: "sip:{number}@192.0.2.20"   # where `callback` nodes' callers are called
//!                            # back (a gateway or trunk); without it, callbacks are refused
//! backends:                  # what dialplan `http` nodes send to each backend (net/backend.rs)
//!   - url: https://crm.example.com/      # requests whose URL starts with this
//!     ca: /etc/voxnav/crm-ca.pem         # trust only this CA (default: Mozilla's roots)
//!     headers: { Authorization: "Bearer ${CRM_TOKEN}" }   # ${NAME}: from the environment
//!     basic: { user: ivr, password: "${CRM_PASSWORD}" }   # or HTTP Basic credentials
//! admin:
//!   listen: 127.0.0.1:8081   # /healthz, /metrics, /dashboard, /api (token: VOXNAV_ADMIN_TOKEN)
//! agents: agents.yaml        # human agents whose phones register here (src/agents.rs),
//!                            # reloaded when it changes
//! server_name: voxnav-2     # this server's name in shared records and the cluster view
//!                            # (default: the host name)
//! cluster:
//!   peers: [http://10.0.0.3:8081]   # the other nodes' admin APIs: the dashboard's live calls
//!                                   # and /api/cluster/calls show theirs too
//! records:                   # call records with transcripts (docs/records.md)
//!   path: records/voxnav.db  # a SQLite file, `off`, or a PostgreSQL URL shared by nodes:
//!                            # postgres://voxnav:${PGPASSWORD}@10.0.0.5/voxnav
//!   retention_days: 90
//!   buffer: 50000            # events held while the database is down, then dropped (counted)
//! log:
//!   level: info              # an EnvFilter directive; VOXNAV_LOG overrides it
//!   format: text             # or json (one object per line)
//! asr:
//!   jobs: 2                  # recognitions at once (each takes a core of the shared budget)
//!   engine: whisper          # whisper (base, beam 5) or moonshine (base, greedy: lighter)
//!   overflow: off            # with whisper: N = a request that would wait behind N others
//!                            # goes to moonshine instead (docs/speech.md); off = never
//! turn:                      # turn-taking for every hotline (a hotline's settings.turn wins)
//!   detector: model          # model (Silero VAD + Smart Turn) or energy (700 ms silence)
//!   pause_ms: 200            # a pause this long consults the end-of-turn model
//!   complete_threshold: 0.7  # the model's probability from which a turn is complete
//!   end_silence_ms: 1000     # silence that ends a turn the model did not call complete
//!   digits_end_silence_ms: 1800  # the same at an ask for a number
//!   barge_in_ms: 180         # continuous speech that interrupts a prompt
//!   max_turn_ms: 15000       # the longest turn (hold music, a television)
//! ```
//!
//! Command-line options override the file; the file overrides the built-in defaults.

use std::net::SocketAddr;
use std::path::Path;

use crate::dialplan::error::Problems;
use crate::dialplan::read::{MapReader, number, text};
use crate::dialplan::yaml;
use crate::media::ports::PortPool;

/// Settings from the file (None where it is silent).
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub sip_listen: Option<SocketAddr>,
    pub max_calls: Option<usize>,
    pub ring_ms: Option<u64>,
    /// `sip.trunks`: who may call (empty: everyone).
    pub trunks: Vec<crate::sip::admission::Network>,
    /// `sip.digest`: accounts peers outside the trunks may call with (the secret is drawn at
    /// start, not read).
    pub digest: Option<crate::sip::digest::DigestConfig>,
    /// `sip.register`: voxnav's registration to a registrar.
    pub register: Option<crate::sip::register::RegisterConfig>,
    /// `hotlines:` dialled number (cleaned) -> dialplan file.
    pub hotlines: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// `hotlines.default`: the dialplan for numbers not listed.
    pub default_hotline: Option<std::path::PathBuf>,
    pub rtp_ports: Option<PortPool>,
    /// `sip.tls`: where SIP over TLS listens, and its certificate files.
    pub tls: Option<(SocketAddr, crate::net::tls::TlsFiles)>,
    /// `sip.tls_required_from`: trunks that must call over TLS (403 otherwise).
    pub tls_required_from: Vec<crate::sip::admission::Network>,
    /// `media.srtp_required_from`: trunks whose calls must be SRTP (488 otherwise).
    pub srtp_required_from: Vec<crate::sip::admission::Network>,
    /// `media.srtp`: SRTP (SDES) optional, required or off.
    pub srtp: Option<crate::sip::sdp::SrtpPolicy>,
    pub agent_default: Option<String>,
    pub agent_queues: std::collections::BTreeMap<String, String>,
    /// `transfer.refer`: queue -> the URI a REFER names.
    pub refer_queues: std::collections::BTreeMap<String, String>,
    pub ring_timeout_s: Option<u64>,
    pub queue_wait_s: Option<u64>,
    pub announce_every_s: Option<u64>,
    pub agent_silence_s: Option<u64>,
    pub assist: Option<bool>,
    pub warm: Option<bool>,
    pub messages_dir: Option<std::path::PathBuf>,
    pub callback_uri: Option<String>,
    pub admin_listen: Option<SocketAddr>,
    /// `Some(None)`: `records: { path: off }`.
    pub records: Option<Option<crate::ops::db::Database>>,
    pub retention_days: Option<u32>,
    pub records_buffer: Option<usize>,
    /// This server's name in shared records and the cluster view (default: the host name).
    pub server_name: Option<String>,
    /// The agents file (`agents`): agents' phones register with digest.
    pub agents: Option<std::path::PathBuf>,
    /// `cluster.peers`: the other nodes' admin APIs (the cluster's live calls).
    pub peers: Vec<String>,
    pub log: crate::ops::log::LogConfig,
    pub turn: crate::dialplan::model::TurnOverrides,
    pub asr_jobs: Option<usize>,
    pub asr_engine: Option<AsrEngine>,
    /// `Some(None)`: `overflow: off`.
    pub asr_overflow: Option<Option<usize>>,
    pub media_threads: Option<usize>,
    /// `backends:` trust and credentials per backend URL prefix.
    pub backends: Vec<crate::net::backend::BackendConfig>,
}

/// The recognizer that hears callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsrEngine {
    /// Whisper (the dialplan's `asr_model`, beam 5): the most accurate here.
    Whisper,
    /// Moonshine base, greedy: about half Whisper base's CPU, English only.
    Moonshine,
}

impl std::str::FromStr for AsrEngine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "whisper" => Ok(Self::Whisper),
            "moonshine" => Ok(Self::Moonshine),
            _ => Err(format!(
                "unknown ASR engine `{s}`; choose whisper or moonshine"
            )),
        }
    }
}

/// `asr.overflow` / `--asr-overflow`: `off`, or the number of requests waiting for Whisper
/// from which the next goes to Moonshine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsrOverflow(pub Option<usize>);

impl std::str::FromStr for AsrOverflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_overflow(s).map(Self)
    }
}

/// `off` or a number of waiting requests (at least 1).
pub fn parse_overflow(s: &str) -> Result<Option<usize>, String> {
    match s {
        "off" => Ok(None),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!(
                "`{s}` is not an overflow setting; use off or a number of waiting requests (1 or more)"
            )),
        },
    }
}

fn address(y: &yaml::Yaml, what: &str, p: &mut Problems) -> Option<SocketAddr> {
    let (t, pos) = text(y, what, p)?;
    let parsed = t.parse().ok();
    if parsed.is_none() {
        p.add(
            pos,
            format!("`{t}` is not ADDRESS:PORT"),
            "e.g. 0.0.0.0:5060 or [::]:5060",
        );
    }
    parsed
}

fn sip_uri(y: &yaml::Yaml, what: &str, p: &mut Problems) -> Option<String> {
    let (t, pos) = text(y, what, p)?;
    if crate::sip::uac::uri_host_port(&t).is_none() {
        p.add(
            pos,
            format!("`{t}` is not a sip: URI with a host"),
            "e.g. sip:agent@192.0.2.10:5060",
        );
        return None;
    }
    Some(t)
}

/// A list of addresses and networks (trunks).
fn networks(
    list: &yaml::Yaml,
    what: &'static str,
    p: &mut Problems,
) -> Vec<crate::sip::admission::Network> {
    let mut out = Vec::new();
    for (t, pos) in crate::dialplan::read::texts(list, what, p) {
        match t.parse() {
            Ok(net) => out.push(net),
            Err(e) => p.add(pos, e, "an address (192.0.2.7) or a network (10.0.0.0/8)"),
        }
    }
    out
}

/// `media.srtp` / `--srtp`: optional (SRTP when offered), required, or off.
pub fn parse_srtp(s: &str) -> Result<crate::sip::sdp::SrtpPolicy, String> {
    use crate::sip::sdp::SrtpPolicy;
    match s {
        "optional" => Ok(SrtpPolicy::Optional),
        "required" => Ok(SrtpPolicy::Required),
        "off" => Ok(SrtpPolicy::Off),
        _ => Err(format!("srtp `{s}`: optional, required or off")),
    }
}

/// `records.path`: a SQLite file, `off`, or a PostgreSQL URL whose password (if any) comes
/// from the environment, as every secret of the config does.
fn records_path(
    y: &yaml::Yaml,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<crate::ops::db::Database> {
    let (raw, pos) = text(y, "path", p)?;
    let database = crate::ops::db::Database::parse(&raw);
    if !database.is_postgres() {
        return Some(database);
    }
    let authority = raw.split_once("://").map_or("", |(_, rest)| rest);
    let authority = &authority[..authority.find('/').unwrap_or(authority.len())];
    let written = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, password)| !password.contains("${"));
    if written {
        p.add(
            pos,
            "a database password written in the file",
            "write postgres://USER:${PGPASSWORD}@HOST/DB: it is read from the environment",
        );
        return None;
    }
    let url = env_value(y, "path", env, false, p)?;
    match url.parse::<postgres::Config>() {
        Ok(_) => Some(crate::ops::db::Database::Postgres(url)),
        Err(e) => {
            p.add(
                pos,
                format!("not a PostgreSQL URL: {e}"),
                "postgres://USER:${PGPASSWORD}@HOST:PORT/DATABASE",
            );
            None
        }
    }
}

/// A config value with `${NAME}` replaced from `env` (a variable not set is a problem at its
/// position). `only_from_env`: the value must come from the environment (passwords: one
/// written in the file is refused).
fn env_value(
    y: &yaml::Yaml,
    what: &str,
    env: &dyn Fn(&str) -> Option<String>,
    only_from_env: bool,
    p: &mut Problems,
) -> Option<String> {
    let (t, pos) = text(y, what, p)?;
    if only_from_env && !t.contains("${") {
        p.add(
            pos,
            format!("a {what} written in the file"),
            "give \"${VARIABLE}\": it is read from the environment",
        );
        return None;
    }
    match crate::net::backend::expand_env(&t, env) {
        Ok(v) => Some(v),
        Err(missing) => {
            p.add(
                pos,
                format!(
                    "{what}: environment variable {} is not set",
                    missing.join(", ")
                ),
                "set it in the server's environment (secrets stay out of files)",
            );
            None
        }
    }
}

/// `sip.register`: where and as whom voxnav registers.
fn read_register(
    y: &yaml::Yaml,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<crate::sip::register::RegisterConfig> {
    let mut m = MapReader::new(y, "register", p);
    let registrar = m
        .require("registrar", p)
        .and_then(|y| address(y, "registrar", p));
    let user = m
        .require("user", p)
        .and_then(|y| text(y, "user", p))
        .map(|t| t.0);
    let password = m
        .require("password", p)
        .and_then(|y| env_value(y, "password", env, true, p));
    let domain = m
        .get("domain")
        .and_then(|y| text(y, "domain", p))
        .map(|t| t.0);
    let seconds = |m: &mut MapReader, key: &'static str, p: &mut Problems, default: u64| {
        m.get(key)
            .and_then(|y| number(y, key, p))
            .unwrap_or(default)
            .max(1)
    };
    let expires = seconds(&mut m, "expires", p, 600);
    let retry_min = seconds(&mut m, "retry_min_s", p, 30);
    let retry_max = seconds(&mut m, "retry_max_s", p, 1800).max(retry_min);
    m.finish(&[], p);
    let (registrar, user, password) = (registrar?, user?, password?);
    let domain = domain.unwrap_or_else(|| registrar.ip().to_string());
    Some(crate::sip::register::RegisterConfig {
        registrar,
        domain_uri: format!("sip:{domain}"),
        aor: format!("sip:{user}@{domain}"),
        user,
        password,
        expires: expires.min(u64::from(u32::MAX)) as u32,
        retry_min: std::time::Duration::from_secs(retry_min),
        retry_max: std::time::Duration::from_secs(retry_max),
    })
}

/// `sip.digest`: realm, algorithms, users (hashes, or a password from the environment).
fn read_digest(
    y: &yaml::Yaml,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<crate::sip::digest::DigestConfig> {
    use crate::sip::digest::{Algorithm, DigestConfig, UserHashes};
    let mut m = MapReader::new(y, "digest", p);
    let realm = m.require("realm", p).and_then(|y| text(y, "realm", p))?.0;
    let mut algorithms = Vec::new();
    match m.get("algorithms") {
        None => algorithms = vec![Algorithm::Sha256, Algorithm::Md5],
        Some(list) => {
            for (name, pos) in crate::dialplan::read::texts(list, "an algorithm", p) {
                match Algorithm::parse(&name) {
                    Some(a) if !algorithms.contains(&a) => algorithms.push(a),
                    Some(_) => {}
                    None => p.add(
                        pos,
                        format!("unknown digest algorithm `{name}`"),
                        "SHA-256 or MD5",
                    ),
                }
            }
        }
    }
    let mut users = std::collections::BTreeMap::new();
    if let Some(list) = m.require("users", p) {
        let um = MapReader::new(list, "users", p);
        for (name, value) in um.entries() {
            let mut u = MapReader::new(value, "a digest user", p);
            let hash = |y: Option<&yaml::Yaml>, what: &str, len: usize, p: &mut Problems| {
                let (h, pos) = text(y?, what, p)?;
                let ok = h.len() == len && h.chars().all(|c| c.is_ascii_hexdigit());
                if !ok {
                    p.add(
                        pos,
                        format!("{what} must be {len} hex digits"),
                        "H(user:realm:password)",
                    );
                }
                ok.then(|| h.to_ascii_lowercase())
            };
            let (sha256, md5, password) = (u.get("sha256"), u.get("md5"), u.get("password"));
            if sha256.is_none() && md5.is_none() && password.is_none() {
                p.add(
                    name.pos,
                    format!("digest user `{}` has no credentials", name.name),
                    "give sha256/md5 hashes or password: \"${VARIABLE}\"",
                );
            }
            let mut hashes = UserHashes {
                sha256: hash(sha256, "sha256", 64, p),
                md5: hash(md5, "md5", 32, p),
            };
            if let Some(pw) = password.and_then(|y| env_value(y, "password", env, true, p)) {
                hashes = UserHashes::from_password(&name.name, &realm, &pw);
            }
            u.finish(&[], p);
            users.insert(name.name.clone(), hashes);
        }
    }
    m.finish(&[], p);
    Some(DigestConfig {
        realm,
        users,
        algorithms,
        secret: [0; 32],
    })
}

/// `backends:`: a list of `{url, ca, headers, basic}`; `${NAME}` in header values and
/// credentials comes from `env` (a variable not set is a problem at its position).
fn read_backends(
    y: &yaml::Yaml,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Vec<crate::net::backend::BackendConfig> {
    use crate::net::backend::{BackendConfig, basic_auth};
    let yaml::Yaml::Seq { items, .. } = y else {
        p.add(
            y.pos(),
            "backends must be a list of `- url: ...` entries",
            "",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    let secret = |y: &yaml::Yaml, what: &str, p: &mut Problems| env_value(y, what, env, false, p);
    for item in items {
        let mut m = MapReader::new(item, "a backend", p);
        let Some((url, pos)) = m.require("url", p).and_then(|y| text(y, "url", p)) else {
            m.finish(&[], p);
            continue;
        };
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .filter(|r| !r.is_empty())
        else {
            p.add(
                pos,
                format!("`{url}` is not an http:// or https:// URL"),
                "",
            );
            m.finish(&[], p);
            continue;
        };
        // `https://crm` must not also match `https://crm.evil.example/`: a bare origin gets
        // its `/`.
        let prefix = if rest.contains('/') {
            url.clone()
        } else {
            format!("{url}/")
        };
        let ca = m
            .get("ca")
            .and_then(|y| text(y, "ca", p))
            .map(|(t, _)| t.into());
        let mut headers = Vec::new();
        if let Some(h) = m.get("headers") {
            let hm = MapReader::new(h, "headers", p);
            for (name, value) in hm.entries() {
                if let Some(v) = secret(value, &format!("header {}", name.name), p) {
                    headers.push((name.name.clone(), v));
                }
            }
        }
        if let Some(b) = m.get("basic") {
            let mut bm = MapReader::new(b, "basic", p);
            let user = bm.require("user", p).and_then(|y| secret(y, "user", p));
            let password = bm
                .require("password", p)
                .and_then(|y| secret(y, "password", p));
            if let (Some(u), Some(pw)) = (user, password) {
                headers.push(("Authorization".into(), basic_auth(&u, &pw)));
            }
            bm.finish(&[], p);
        }
        m.finish(&[], p);
        out.push(BackendConfig {
            prefix,
            ca,
            headers,
        });
    }
    out
}

/// Reads a config file; every problem as file:line:col.
pub fn read(path: &Path) -> Result<ServerConfig, String> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let tree = yaml::parse(&source)
        .map_err(|e| format!("{shown}:{}:{}: YAML: {}", e.pos.line, e.pos.col, e.message))?;
    let mut p = Problems::new(&shown);
    let mut config = ServerConfig::default();
    let mut top = MapReader::new(&tree, "the server config", &mut p);
    if let Some(sip) = top.get("sip") {
        let mut m = MapReader::new(sip, "sip", &mut p);
        config.sip_listen = m.get("listen").and_then(|y| address(y, "listen", &mut p));
        config.max_calls = m
            .get("max_calls")
            .and_then(|y| number(y, "max_calls", &mut p))
            .map(|n| n as usize);
        config.ring_ms = m.get("ring_ms").and_then(|y| number(y, "ring_ms", &mut p));
        if let Some(tls) = m.get("tls") {
            let mut t = MapReader::new(tls, "tls", &mut p);
            let listen = t.get("listen").and_then(|y| address(y, "listen", &mut p));
            let cert = (t.get("cert").and_then(|y| text(y, "cert", &mut p))).map(|(v, _)| v.into());
            let key = (t.get("key").and_then(|y| text(y, "key", &mut p))).map(|(v, _)| v.into());
            t.finish(&[], &mut p);
            match (listen, cert, key) {
                (Some(listen), Some(cert), Some(key)) => {
                    config.tls = Some((listen, crate::net::tls::TlsFiles { cert, key }));
                }
                _ => p.add(
                    tls.pos(),
                    "sip.tls needs listen, cert and key",
                    "listen: 0.0.0.0:5061, cert: chain.pem, key: key.pem",
                ),
            }
        }
        if let Some(register) = m.get("register") {
            config.register = read_register(register, &|n| std::env::var(n).ok(), &mut p);
        }
        if let Some(digest) = m.get("digest") {
            config.digest = read_digest(digest, &|n| std::env::var(n).ok(), &mut p);
        }
        if let Some(trunks) = m.get("trunks") {
            config.trunks = networks(trunks, "a trunk", &mut p);
        }
        if let Some(list) = m.get("tls_required_from") {
            config.tls_required_from = networks(list, "a trunk", &mut p);
        }
        m.finish(&[], &mut p);
    }
    if let Some(hotlines) = top.get("hotlines") {
        let m = MapReader::new(hotlines, "hotlines", &mut p);
        for (key, value) in m.entries() {
            let Some((file, _)) = text(value, "a hotline's dialplan file", &mut p) else {
                continue;
            };
            if key.name == "default" {
                config.default_hotline = Some(file.into());
                continue;
            }
            match crate::sip::identity::clean_dialled(&key.name) {
                Some(number) if config.hotlines.contains_key(&number) => p.add(
                    key.pos,
                    format!("number `{}` is listed twice", key.name),
                    "each number answers one hotline",
                ),
                Some(number) => {
                    config.hotlines.insert(number, file.into());
                }
                None => p.add(
                    key.pos,
                    format!("`{}` is not a number or SIP user", key.name),
                    "e.g. \"4000\", \"+15550100\" or sales",
                ),
            }
        }
    }
    if let Some(media) = top.get("media") {
        let mut m = MapReader::new(media, "media", &mut p);
        if let Some((t, pos)) = m
            .get("rtp_ports")
            .and_then(|y| text(y, "rtp_ports", &mut p))
        {
            match PortPool::parse(&t) {
                Ok(pool) => config.rtp_ports = Some(pool),
                Err(e) => p.add(pos, e, ""),
            }
        }
        if let Some(list) = m.get("srtp_required_from") {
            config.srtp_required_from = networks(list, "a trunk", &mut p);
        }
        if let Some((t, pos)) = m.get("srtp").and_then(|y| text(y, "srtp", &mut p)) {
            match parse_srtp(&t) {
                Ok(policy) => config.srtp = Some(policy),
                Err(e) => p.add(pos, e, "optional, required or off"),
            }
        }
        config.media_threads = m
            .get("threads")
            .and_then(|y| number(y, "threads", &mut p))
            .map(|n| n.max(1) as usize);
        m.finish(&[], &mut p);
    }
    if let Some(transfer) = top.get("transfer") {
        let mut m = MapReader::new(transfer, "transfer", &mut p);
        config.agent_default = m.get("default").and_then(|y| sip_uri(y, "default", &mut p));
        if let Some(queues) = m.get("queues") {
            let q = MapReader::new(queues, "queues", &mut p);
            for (name, value) in q.entries() {
                if let Some(uri) = sip_uri(value, "a queue's seat", &mut p) {
                    config.agent_queues.insert(name.name.clone(), uri);
                }
            }
        }
        if let Some(refer) = m.get("refer") {
            let q = MapReader::new(refer, "refer", &mut p);
            for (name, value) in q.entries() {
                if let Some(uri) = sip_uri(value, "a REFER target", &mut p) {
                    config.refer_queues.insert(name.name.clone(), uri);
                }
            }
        }
        config.ring_timeout_s = m
            .get("ring_timeout_s")
            .and_then(|y| number(y, "ring_timeout_s", &mut p));
        config.queue_wait_s = m
            .get("queue_wait_s")
            .and_then(|y| number(y, "queue_wait_s", &mut p));
        config.announce_every_s = m
            .get("announce_every_s")
            .and_then(|y| number(y, "announce_every_s", &mut p));
        config.agent_silence_s = m
            .get("agent_silence_s")
            .and_then(|y| number(y, "agent_silence_s", &mut p));
        config.assist = m
            .get("assist")
            .and_then(|y| crate::dialplan::read::boolean(y, "assist", &mut p));
        config.warm = m
            .get("warm")
            .and_then(|y| crate::dialplan::read::boolean(y, "warm", &mut p));
        config.callback_uri = m.get("callback_uri").and_then(|y| {
            let (uri, pos) = text(y, "callback_uri", &mut p)?;
            if !uri.starts_with("sip:") || !uri.contains("{number}") {
                p.add(
                    pos,
                    format!("`{uri}` is not a SIP URI with {{number}}"),
                    "e.g. sip:{number}@192.0.2.20",
                );
                return None;
            }
            Some(uri)
        });
        config.messages_dir = m
            .get("messages_dir")
            .and_then(|y| text(y, "messages_dir", &mut p))
            .map(|(t, _)| t.into());
        m.finish(&[], &mut p);
    }
    if let Some(backends) = top.get("backends") {
        config.backends = read_backends(backends, &|n| std::env::var(n).ok(), &mut p);
    }
    if let Some(cluster) = top.get("cluster") {
        let mut m = MapReader::new(cluster, "cluster", &mut p);
        if let Some(peers) = m.get("peers") {
            for (t, pos) in crate::dialplan::read::texts(peers, "a peer", &mut p) {
                if t.starts_with("http://") {
                    config.peers.push(t.trim_end_matches('/').to_string());
                } else {
                    p.add(
                        pos,
                        format!("peer `{t}` is not an http:// address"),
                        "give another node's admin API, like http://10.0.0.3:8081",
                    );
                }
            }
        }
        m.finish(&[], &mut p);
    }
    if let Some(agents) = top.get("agents") {
        config.agents = text(agents, "agents", &mut p).map(|(t, _)| t.into());
    }
    if let Some(name) = top.get("server_name") {
        config.server_name = text(name, "server_name", &mut p).map(|(t, _)| t);
    }
    if let Some(admin) = top.get("admin") {
        let mut m = MapReader::new(admin, "admin", &mut p);
        config.admin_listen = m.get("listen").and_then(|y| address(y, "listen", &mut p));
        m.finish(&[], &mut p);
    }
    if let Some(records) = top.get("records") {
        let mut m = MapReader::new(records, "records", &mut p);
        config.records = m
            .get("path")
            .and_then(|y| records_path(y, &|n| std::env::var(n).ok(), &mut p))
            .map(|d| Some(d).filter(|d| *d != crate::ops::db::Database::parse("off")));
        config.retention_days = m
            .get("retention_days")
            .and_then(|y| number(y, "retention_days", &mut p))
            .map(|d| d as u32);
        config.records_buffer = m
            .get("buffer")
            .and_then(|y| number(y, "buffer", &mut p))
            .map(|d| (d as usize).max(1));
        m.finish(&[], &mut p);
    }
    if let Some(log) = top.get("log") {
        let mut m = MapReader::new(log, "log", &mut p);
        if let Some((level, pos)) = m.get("level").and_then(|y| text(y, "level", &mut p)) {
            match tracing_subscriber::EnvFilter::try_new(&level) {
                Ok(_) => config.log.level = Some(level),
                Err(e) => p.add(
                    pos,
                    format!("`{level}` is not a log level: {e}"),
                    "e.g. info, debug, voxnav=debug",
                ),
            }
        }
        if let Some((format, pos)) = m.get("format").and_then(|y| text(y, "format", &mut p)) {
            match format.as_str() {
                "text" => config.log.json = false,
                "json" => config.log.json = true,
                _ => p.add(
                    pos,
                    format!("`{format}` is not a log format"),
                    "text or json",
                ),
            }
        }
        m.finish(&[], &mut p);
    }
    if let Some(asr) = top.get("asr") {
        let mut m = MapReader::new(asr, "asr", &mut p);
        config.asr_jobs = m
            .get("jobs")
            .and_then(|y| number(y, "jobs", &mut p))
            .map(|n| n.max(1) as usize);
        if let Some((engine, pos)) = m.get("engine").and_then(|y| text(y, "engine", &mut p)) {
            match engine.parse() {
                Ok(e) => config.asr_engine = Some(e),
                Err(e) => p.add(pos, e, ""),
            }
        }
        if let Some((overflow, pos)) = m.get("overflow").and_then(|y| text(y, "overflow", &mut p)) {
            match parse_overflow(&overflow) {
                Ok(o) => config.asr_overflow = Some(o),
                Err(e) => p.add(pos, e, ""),
            }
        }
        m.finish(&[], &mut p);
    }
    if let Some(turn) = top.get("turn") {
        config.turn = crate::dialplan::load::read_turn(turn, &mut p);
    }
    top.finish(&[], &mut p);
    p.into_result(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_settings_and_reports_problems_with_positions() {
        let dir = std::env::temp_dir().join(format!("voxnav-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(
            &good,
            "sip:\n  listen: 127.0.0.1:5070\n  max_calls: 7\nmedia:\n  rtp_ports: 30000-30100\n\
             transfer:\n  default: sip:desk@192.0.2.10\n  queues:\n    billing: sip:b@192.0.2.11:5070\n\
             admin:\n  listen: 127.0.0.1:8081\nrecords:\n  path: off\n  retention_days: 30\n\
             log:\n  level: voxnav=debug\n  format: json\nasr:\n  jobs: 1\n  engine: moonshine\n  overflow: 2\n",
        )
        .unwrap();
        let c = read(&good).unwrap();
        assert!(c.trunks.is_empty() && c.hotlines.is_empty() && c.default_hotline.is_none());
        assert_eq!(c.sip_listen, Some("127.0.0.1:5070".parse().unwrap()));
        assert_eq!((c.max_calls, c.ring_ms), (Some(7), None));
        assert_eq!(c.rtp_ports.unwrap().capacity(), 50);
        assert_eq!(c.agent_default.as_deref(), Some("sip:desk@192.0.2.10"));
        assert_eq!(c.agent_queues["billing"], "sip:b@192.0.2.11:5070");
        assert_eq!(c.admin_listen, Some("127.0.0.1:8081".parse().unwrap()));
        assert_eq!((c.records, c.retention_days), (Some(None), Some(30)));
        assert_eq!(c.log.level.as_deref(), Some("voxnav=debug"));
        assert!(c.log.json);
        assert_eq!(c.asr_jobs, Some(1));
        assert_eq!(c.asr_engine, Some(AsrEngine::Moonshine));
        assert_eq!(c.asr_overflow, Some(Some(2)));
        let bad = dir.join("bad.yaml");
        std::fs::write(
            &bad,
            "sip:\n  listen: here\n  max_cals: 7\ntransfer:\n  queues:\n    billing: desk 4\nlog:\n  format: xml\n\
             asr:\n  engine: kaldi\n  overflow: 0\n",
        )
        .unwrap();
        let e = read(&bad).unwrap_err();
        assert!(
            e.contains("bad.yaml:2:11: `here` is not ADDRESS:PORT"),
            "{e}"
        );
        assert!(
            e.contains("bad.yaml:3:3: unknown key `max_cals` in sip")
                && e.contains("did you mean `max_calls`?"),
            "{e}"
        );
        assert!(
            e.contains("bad.yaml:6:14: `desk 4` is not a sip: URI"),
            "{e}"
        );
        assert!(
            e.contains("bad.yaml:8:11: `xml` is not a log format"),
            "{e}"
        );
        assert!(
            e.contains("bad.yaml:10:11: unknown ASR engine `kaldi`"),
            "{e}"
        );
        assert!(
            e.contains("bad.yaml:11:13: `0` is not an overflow setting"),
            "{e}"
        );
        assert_eq!(parse_overflow("off"), Ok(None));
        let backends = dir.join("backends.yaml");
        std::fs::write(
            &backends,
            "backends:\n  - url: https://crm.example\n    ca: ca.pem\n    headers: { Authorization: \"Bearer ${VOXNAV_TEST_UNSET_TOKEN}\" }\n\
             \x20 - url: ftp://x/\n  - url: http://orders/api/\n    basic: { user: ivr, password: pw }\n",
        )
        .unwrap();
        let e = read(&backends).unwrap_err();
        assert!(
            e.contains("backends.yaml:4:31: header Authorization: environment variable VOXNAV_TEST_UNSET_TOKEN is not set"),
            "{e}"
        );
        assert!(
            e.contains("backends.yaml:5:10: `ftp://x/` is not an http"),
            "{e}"
        );
        let tree = yaml::parse(
            "- url: https://crm.example\n  headers: { Authorization: \"Bearer ${T}\" }\n- url: http://orders/api/\n  basic: { user: ivr, password: pw }\n",
        )
        .unwrap();
        let mut p = Problems::new("t");
        let env = |n: &str| (n == "T").then(|| "tok".to_string());
        let list = read_backends(&tree, &env, &mut p);
        assert_eq!(list[0].prefix, "https://crm.example/");
        assert_eq!(list[0].headers[0].1, "Bearer tok");
        assert_eq!(list[1].prefix, "http://orders/api/");
        assert_eq!(list[1].headers[0].1, "Basic aXZyOnB3");
        let tree = yaml::parse(
            "realm: voxnav\nalgorithms: [MD5, SHA-512]\nusers:\n  a: { password: \"${PW}\" }\n  b: { password: plain }\n  c: { md5: \"abc\" }\n  d: {}\n",
        )
        .unwrap();
        let mut p = Problems::new("d.yaml");
        let env = |n: &str| (n == "PW").then(|| "s3cret".to_string());
        let d = read_digest(&tree, &env, &mut p).unwrap();
        assert_eq!(d.algorithms, vec![crate::sip::digest::Algorithm::Md5]);
        assert_eq!(
            d.users["a"],
            crate::sip::digest::UserHashes::from_password("a", "voxnav", "s3cret")
        );
        let e = p.into_result(()).unwrap_err();
        assert!(
            e.contains("d.yaml:2:19: unknown digest algorithm `SHA-512`"),
            "{e}"
        );
        assert!(
            e.contains("d.yaml:5:18: a password written in the file"),
            "{e}"
        );
        assert!(e.contains("d.yaml:6:13: md5 must be 32 hex digits"), "{e}");

        assert!(
            e.contains("d.yaml:7:3: digest user `d` has no credentials"),
            "{e}"
        );
        // Records in PostgreSQL: the password from the environment, never from the file.
        let env = |n: &str| (n == "PGPW").then(|| "s3cret".to_string());
        let mut p = Problems::new("r.yaml");
        let url = yaml::parse("\"postgres://voxnav:${PGPW}@127.0.0.1:5432/voxnav\"").unwrap();
        assert_eq!(
            records_path(&url, &env, &mut p),
            Some(crate::ops::db::Database::Postgres(
                "postgres://voxnav:s3cret@127.0.0.1:5432/voxnav".into()
            ))
        );
        let file = yaml::parse("records/x.db").unwrap();
        assert!(!records_path(&file, &env, &mut p).unwrap().is_postgres());
        let written = yaml::parse("postgres://voxnav:plain@db/voxnav").unwrap();
        assert_eq!(records_path(&written, &env, &mut p), None);
        let e = p.into_result(()).unwrap_err();
        assert!(
            e.contains("r.yaml:1:1: a database password written in the file"),
            "{e}"
        );
        let lines = dir.join("lines.yaml");
        std::fs::write(
            &lines,
            "sip:\n  trunks: [127.0.0.1, 10.0.0.0/8]\n  tls_required_from: [10.1.0.0/16]\n\
             media:\n  srtp: off\n  srtp_required_from: [10.1.2.3]\nhotlines:\n  \"+1 555 0100\": a.yaml\n  sales: b.yaml\n  default: a.yaml\n",
        )
        .unwrap();
        let c = read(&lines).unwrap();
        assert_eq!(c.trunks.len(), 2);
        assert_eq!(
            (c.tls_required_from.len(), c.srtp_required_from.len()),
            (1, 1)
        );
        assert_eq!(c.srtp, Some(crate::sip::sdp::SrtpPolicy::Off));
        assert_eq!(c.hotlines["+15550100"], Path::new("a.yaml"));
        assert_eq!(c.hotlines["sales"], Path::new("b.yaml"));
        assert_eq!(c.default_hotline.as_deref(), Some(Path::new("a.yaml")));
        std::fs::write(
            &lines,
            "sip:\n  trunks: [10.0.0.0/40]\nhotlines:\n  \"4000\": a.yaml\n  \"40-00\": b.yaml\n",
        )
        .unwrap();
        let e = read(&lines).unwrap_err();
        assert!(
            e.contains("lines.yaml:2:12: `10.0.0.0/40`: the prefix length"),
            "{e}"
        );
        assert!(
            e.contains("lines.yaml:5:3: number `40-00` is listed twice"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
