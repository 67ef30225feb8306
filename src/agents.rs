//! The agents file (`agents.yaml`, issue 15): who the contact centre's human agents are, their
//! skills and queues, and the digest hashes their phones register with. Read like a dialplan:
//! every problem with file:line:col, and a broken file refused whole (the server keeps the
//! accounts it had).
//!
//! ```yaml
//! realm: voxnav              # the digest realm the hashes were made for
//! agents:
//!   alice:                   # the agent id, also the SIP user name her phone registers as
//!     name: Alice Chen
//!     skills: { billing: 4, orders: 2 }   # levels 1 (basic) to 5 (expert)
//!     queues: [billing, general]
//!     sip:
//!       ha1_sha256: 5e884898...          # `voxnav agent-password alice` prints both
//!       ha1_md5: 0cc175b9...
//! ```
//!
//! Passwords are never written in the file: only the HA1 hashes (`H(user:realm:password)`,
//! RFC 8760 section 3), which is what a digest server needs. A `password:` key is refused with
//! the command that makes the hashes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::dialplan::error::{DialplanError, Problems};
use crate::dialplan::read::{
    MapReader, is_identifier, number, parse_source, read_source, text, texts,
};
use crate::dialplan::yaml::Yaml;
use crate::sip::digest::{Algorithm, DigestConfig, UserHashes};

/// The realm when the file names none.
pub const DEFAULT_REALM: &str = "voxnav";
/// Skill levels.
pub const SKILL_LEVELS: std::ops::RangeInclusive<u64> = 1..=5;

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub skills: BTreeMap<String, u8>,
    pub queues: Vec<String>,
    #[serde(skip)]
    pub hashes: UserHashes,
}

/// Every agent, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentBook {
    pub realm: String,
    pub agents: BTreeMap<String, Agent>,
}

impl AgentBook {
    /// The accounts a digest verifier checks REGISTERs against (SHA-256 offered first, MD5
    /// for phones without it, RFC 8760 section 2.4).
    pub fn digest_users(&self) -> BTreeMap<String, UserHashes> {
        (self.agents.iter())
            .map(|(id, a)| (id.clone(), a.hashes.clone()))
            .collect()
    }

    /// A digest configuration for these accounts with `secret` as the nonces' key. An
    /// algorithm is offered when some agent has its hash: a file with only `ha1_md5` lines
    /// offers MD5 alone, for phones that give up on a SHA-256 challenge instead of taking the
    /// MD5 one beside it (baresip 1.0's libre answers such a challenge with ENOSYS).
    pub fn digest_config(&self, secret: [u8; 32]) -> DigestConfig {
        let any = |f: fn(&UserHashes) -> bool| self.agents.values().any(|a| f(&a.hashes));
        let algorithms = [
            (Algorithm::Sha256, any(|h| h.sha256.is_some())),
            (Algorithm::Md5, any(|h| h.md5.is_some())),
        ];
        DigestConfig {
            realm: self.realm.clone(),
            users: self.digest_users(),
            algorithms: (algorithms.into_iter())
                .filter_map(|(a, offered)| offered.then_some(a))
                .collect(),
            secret,
        }
    }
}

/// Reads and checks an agents file.
pub fn load_file(path: &Path) -> Result<AgentBook, DialplanError> {
    let (shown, source) = read_source(path)?;
    load_str(&shown, &source)
}

/// Reads and checks agents from text (`file` names it in errors).
pub fn load_str(file: &str, source: &str) -> Result<AgentBook, DialplanError> {
    let mut p = Problems::new(file);
    let Some(tree) = parse_source(source, &mut p) else {
        return Err(DialplanError { problems: p.list });
    };
    let book = read_book(&tree, &mut p);
    if p.list.is_empty() {
        Ok(book)
    } else {
        p.list.sort_by_key(|x| x.pos);
        Err(DialplanError { problems: p.list })
    }
}

fn read_book(tree: &Yaml, p: &mut Problems) -> AgentBook {
    let mut top = MapReader::new(tree, "the agents file", p);
    let realm = top
        .get("realm")
        .and_then(|y| text(y, "realm", p))
        .map_or(DEFAULT_REALM.to_string(), |(r, _)| r);
    let mut agents = BTreeMap::new();
    if let Some(list) = top.require("agents", p) {
        let reader = MapReader::new(list, "agents", p);
        for (key, y) in reader.entries() {
            if !is_identifier(&key.name) {
                p.add(
                    key.pos,
                    format!("agent id `{}` must be letters, digits, _ - .", key.name),
                    "the id is also the SIP user name the agent's phone registers as",
                );
                continue;
            }
            if let Some(agent) = read_agent(&key.name, y, &realm, p) {
                agents.insert(key.name.clone(), agent);
            }
        }
    }
    top.finish(&[], p);
    AgentBook { realm, agents }
}

fn read_agent(id: &str, y: &Yaml, realm: &str, p: &mut Problems) -> Option<Agent> {
    let mut m = MapReader::new(y, "an agent", p);
    let name = m
        .get("name")
        .and_then(|y| text(y, "name", p))
        .map_or(id.to_string(), |(n, _)| n);
    let mut skills = BTreeMap::new();
    if let Some(y) = m.get("skills") {
        let reader = MapReader::new(y, "skills", p);
        for (skill, level) in reader.entries() {
            let Some(n) = number(level, "a skill level", p) else {
                continue;
            };
            if !SKILL_LEVELS.contains(&n) {
                p.add(
                    level.pos(),
                    format!("skill level {n} for `{}` is out of range", skill.name),
                    "levels go from 1 (basic) to 5 (expert)",
                );
                continue;
            }
            skills.insert(skill.name.clone(), n as u8);
        }
    }
    let queues: Vec<String> = m
        .get("queues")
        .map(|y| texts(y, "queues", p))
        .unwrap_or_default()
        .into_iter()
        .map(|(q, _)| q)
        .collect();
    if let Some(y) = m.get("password") {
        p.add(
            y.pos(),
            "a password must not be written in the agents file",
            format!("run `voxnav agent-password {id} --realm {realm}` and paste its `sip:` lines"),
        );
    }
    let hashes = match m.require("sip", p) {
        Some(y) => read_hashes(id, y, realm, p),
        None => None,
    };
    m.finish(&[], p);
    Some(Agent {
        id: id.to_string(),
        name,
        skills,
        queues,
        hashes: hashes?,
    })
}

fn read_hashes(id: &str, y: &Yaml, realm: &str, p: &mut Problems) -> Option<UserHashes> {
    let mut m = MapReader::new(y, "an agent's sip", p);
    let mut hash = |key: &'static str, len: usize, p: &mut Problems| {
        let (h, pos) = text(m.get(key)?, key, p)?;
        if h.len() != len || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            p.add(
                pos,
                format!(
                    "{key} must be {len} hex digits, found {} characters",
                    h.len()
                ),
                format!("run `voxnav agent-password {id} --realm {realm}`"),
            );
            return None;
        }
        Some(h.to_ascii_lowercase())
    };
    let hashes = UserHashes {
        sha256: hash("ha1_sha256", 64, p),
        md5: hash("ha1_md5", 32, p),
    };
    if let Some(y) = m.get("password") {
        p.add(
            y.pos(),
            "a password must not be written in the agents file",
            format!("run `voxnav agent-password {id} --realm {realm}` and paste its lines"),
        );
    }
    let pos = m.pos;
    m.finish(&[], p);
    if hashes.sha256.is_none() && hashes.md5.is_none() {
        p.add(
            pos,
            format!("agent `{id}` has no ha1_sha256 or ha1_md5: its phone could not register"),
            format!("run `voxnav agent-password {id} --realm {realm}`"),
        );
        return None;
    }
    Some(hashes)
}

/// The `sip:` lines for an agent's entry (what `voxnav agent-password` prints).
pub fn hash_lines(id: &str, realm: &str, password: &str) -> String {
    let h = UserHashes::from_password(id, realm, password);
    format!(
        "    sip:\n      ha1_sha256: {}\n      ha1_md5: {}\n",
        h.sha256.unwrap_or_default(),
        h.md5.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(alice_sip: &str) -> String {
        format!(
            "realm: centre\nagents:\n  alice:\n    name: Alice Chen\n    skills: {{ billing: 4, orders: 2 }}\n    \
             queues: [billing, general]\n{alice_sip}  bob:\n    queues: general\n{}",
            hash_lines("bob", "centre", "b0b-secret")
        )
    }

    #[test]
    fn agents_are_read_with_their_hashes_and_never_a_password() {
        let book = load_str(
            "agents.yaml",
            &file_with(&hash_lines("alice", "centre", "pw")),
        )
        .expect("a valid file");
        assert_eq!(book.realm, "centre");
        let alice = &book.agents["alice"];
        assert_eq!(alice.name, "Alice Chen");
        assert_eq!(alice.skills["billing"], 4);
        assert_eq!(alice.queues, vec!["billing", "general"]);
        assert_eq!(
            alice.hashes,
            UserHashes::from_password("alice", "centre", "pw")
        );
        assert_eq!(book.agents["bob"].name, "bob");
        assert_eq!(book.agents["bob"].queues, vec!["general"]);
        // The digest accounts are the hashes; nothing serialised shows them.
        assert_eq!(book.digest_users().len(), 2);
        let shown = serde_json::to_string(alice).unwrap();
        assert!(
            !shown.contains(&alice.hashes.sha256.clone().unwrap()),
            "{shown}"
        );
    }

    #[test]
    fn mistakes_are_refused_with_file_line_and_column() {
        let broken = file_with("    password: hunter2\n    sip:\n      ha1_md5: abc\n");
        let err = load_str("agents.yaml", &broken).unwrap_err().to_string();
        assert!(
            err.contains("agents.yaml:7:15: a password must not be written"),
            "{err}"
        );
        assert!(
            err.contains("voxnav agent-password alice --realm centre"),
            "{err}"
        );
        assert!(
            err.contains("agents.yaml:9:16: ha1_md5 must be 32 hex digits"),
            "{err}"
        );
        let levels =
            file_with(&hash_lines("alice", "centre", "pw")).replace("billing: 4", "billing: 9");
        let err = load_str("agents.yaml", &levels).unwrap_err().to_string();
        assert!(
            err.contains("skill level 9 for `billing` is out of range"),
            "{err}"
        );
        let unknown =
            file_with(&hash_lines("alice", "centre", "pw")).replace("queues: [", "queus: [");
        let err = load_str("agents.yaml", &unknown).unwrap_err().to_string();
        assert!(err.contains("unknown key `queus` in an agent"), "{err}");
        let no_sip = "agents:\n  carol:\n    name: Carol\n";
        let err = load_str("agents.yaml", no_sip).unwrap_err().to_string();
        assert!(
            err.contains("agents.yaml:3:") && err.contains("an agent needs `sip`"),
            "{err}"
        );
    }
}
