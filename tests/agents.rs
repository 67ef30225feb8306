//! Agents' phones register with voxnav (issue 15's registrar): two headless baresip agents
//! with digest credentials from the agents file. The right password binds the phone (the
//! admin API lists its contact, the metrics count it); a wrong one is refused and binds
//! nothing; a broken agents file is refused while the accounts in use stay; the phone's
//! un-registration as it quits removes the binding.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use voxnav::testkit::{
    KillOnDrop, free_udp_port, md5_agent_lines, serve_ready, temp_dir, wait_for_line,
};

const TOKEN: &str = "agents-token";

/// The agents with MD5 hashes only: baresip 1.0 (Debian 12) gives up on a SHA-256 challenge
/// rather than answer the MD5 one beside it, and a file without SHA-256 hashes offers MD5
/// alone (`AgentBook::digest_config`).
fn agents_file(agents: &[(&str, &str)]) -> String {
    let mut text = String::from("realm: voxnav\nagents:\n");
    for (id, password) in agents {
        text.push_str(&format!(
            "  {id}:\n    name: Agent {id}\n    queues: [general]\n{}",
            md5_agent_lines(id, password)
        ));
    }
    text
}

/// A headless baresip on `ip` registering `user` with `password` at `registrar` for `seconds`.
fn baresip(
    dir: &Path,
    ip: &str,
    (user, password): (&str, &str),
    registrar: &str,
    seconds: u32,
) -> Child {
    let conf = dir.join(format!("baresip-{user}"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen {ip}:{}\nnet_interface {ip}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule_app account.so\n",
            free_udp_port()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!("<sip:{user}@{registrar}>;auth_pass={password};regint=600\n"),
    )
    .unwrap();
    Command::new("baresip")
        .args(["-f", conf.to_str().unwrap(), "-t", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip is installed (baresip-core)")
}

fn api(admin: &str, path: &str) -> String {
    let (status, body) = voxnav::net::http::fetch_with_headers(
        "GET",
        &format!("http://{admin}{path}"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
        Duration::from_secs(5),
    )
    .expect("the admin API answers");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn agents_register_from_baresip_with_digest_and_wrong_passwords_bind_nothing() {
    let dir = temp_dir("agents");
    let file = dir.join("agents.yaml");
    std::fs::write(
        &file,
        agents_file(&[("alice", "alice-pw"), ("bob", "bob-pw")]),
    )
    .unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let args = [
        "--agents".into(),
        file.clone().into_os_string(),
        "--admin-listen".into(),
        admin.clone().into(),
        "--admin-token".into(),
        TOKEN.into(),
    ];
    let (_server, lines, registrar) =
        serve_ready::<std::ffi::OsString>(env!("CARGO_BIN_EXE_voxnav"), &args);

    // Alice's phone with her password, Bob's with a wrong one, both on one address (as
    // behind an office NAT): Bob's phone retrying its wrong answer slows down Bob's account
    // from that address, not Alice's.
    let mut alice = KillOnDrop(baresip(
        &dir,
        "127.0.0.1",
        ("alice", "alice-pw"),
        &registrar,
        12,
    ));
    let _bob = KillOnDrop(baresip(
        &dir,
        "127.0.0.2",
        ("bob", "not-bobs"),
        &registrar,
        12,
    ));
    let mut seen = Vec::new();
    let mut wait = |text: &str| {
        let line = wait_for_line(&lines, text, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{text:?} in voxnav's output (saw {seen:?})"));
        seen.push(line.clone());
        line
    };
    // The two phones register at once: their lines come in either order.
    let (mut registered, mut refused) = (String::new(), String::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while registered.is_empty() || refused.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = (lines.recv_timeout(left)).unwrap_or_else(|_| {
            panic!("Alice registered ({registered:?}) and Bob refused ({refused:?})")
        });
        if line.starts_with("voxnav: agent alice registered: sip:alice") {
            registered = line;
        } else if line.starts_with("voxnav: REGISTER as \"bob\"") {
            refused = line;
        }
    }
    assert!(refused.ends_with("refused: wrong credentials"), "{refused}");
    println!("{registered}\n{refused}");

    let agents: serde_json::Value = serde_json::from_str(&api(&admin, "/api/agents")).unwrap();
    assert_eq!(agents["configured"], true);
    let by_id = |id: &str| {
        (agents["agents"].as_array().unwrap().iter())
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed: {agents}"))
    };
    let contacts = by_id("alice")["contacts"].clone();
    assert_eq!(contacts.as_array().map(Vec::len), Some(1), "{agents}");
    assert!(contacts[0].as_str().unwrap().starts_with("sip:alice"));
    assert_eq!(by_id("bob")["contacts"], serde_json::json!([]), "{agents}");
    assert_eq!(by_id("alice")["queues"], serde_json::json!(["general"]));
    assert!(
        !agents.to_string().contains("ha1"),
        "no hash leaves: {agents}"
    );
    let metrics = api(&admin, "/metrics");
    let sample = |name: &str| voxnav::ops::metrics::sample(&metrics, name);
    assert_eq!(sample("voxnav_agents_registered"), 1.0);
    assert!(sample("voxnav_agent_register_refusals_total") >= 1.0);

    // A broken agents file is refused; Alice stays registered with the accounts in use.
    std::fs::write(&file, "agents:\n  alice:\n    password: alice-pw\n").unwrap();
    wait("refused, the accounts in use stay");
    let agents = api(&admin, "/api/agents");
    assert!(agents.contains("\"contacts\":[\"sip:alice"), "{agents}");

    // Alice's phone un-registers as it quits.
    wait("voxnav: agent alice unregistered");
    let _ = alice.0.wait();
    let agents: serde_json::Value = serde_json::from_str(&api(&admin, "/api/agents")).unwrap();
    let alice_now = (agents["agents"].as_array().unwrap().iter())
        .find(|a| a["id"] == "alice")
        .cloned()
        .unwrap();
    assert_eq!(alice_now["contacts"], serde_json::json!([]));
    let _ = std::fs::remove_dir_all(&dir);
}
