//! voxnav registering itself to a registrar (`sip.register`), against SIPp playing the
//! registrar on loopback (`sip-test/uas_registrar.xml`): the REGISTER is challenged, answered
//! with digest credentials SIPp verifies, accepted for 2 s and refreshed before that; the
//! registrar restarts and the next refresh registers again with the new registrar; a
//! registrar that answers 403 leaves the registration failed, counted in the metrics and shown
//! by the admin API, and retried.

use std::process::{Command, Stdio};
use std::time::Duration;

use voxnav::testkit::{
    KillOnDrop, free_udp_port, lines_of, temp_dir, wait_exit, wait_for_line as wait_for,
};

const TOKEN: &str = "reg-token";

fn registrar(port: u16, scenario: &str) -> std::process::Child {
    Command::new("sipp")
        .args([
            "-sf",
            &format!("{}/sip-test/{scenario}", env!("CARGO_MANIFEST_DIR")),
        ])
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .args(["-m", "1", "-timeout", "30", "-timeout_error", "-nostdin"])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp is installed (sip-tester)")
}

/// Waits for a SIPp run to end; whether all its calls succeeded.
fn finished(mut sipp: std::process::Child, limit: Duration) -> bool {
    let status = wait_exit(&mut sipp, limit);
    if status.is_none() {
        let _ = sipp.kill();
    }
    status.is_some_and(|s| s.success())
}

#[test]
fn voxnav_registers_with_digest_refreshes_recovers_and_reports_refusals() {
    let dir = temp_dir("registration");
    let registrar_port = free_udp_port();
    let admin_port = free_udp_port();
    let config = dir.join("voxnav.yaml");
    std::fs::write(
        &config,
        format!(
            "sip:\n  register:\n    registrar: 127.0.0.1:{registrar_port}\n    domain: carrier.test\n    \
             user: voxnav\n    password: \"${{VOXNAV_TEST_TRUNK_PASSWORD}}\"\n    expires: 2\n    \
             retry_min_s: 1\n    retry_max_s: 2\nadmin:\n  listen: 127.0.0.1:{admin_port}\n"
        ),
    )
    .unwrap();
    // The registrar is up first.
    let first = registrar(registrar_port, "uas_registrar.xml");
    let mut server = Command::new(env!("CARGO_BIN_EXE_voxnav"))
        .args(["serve", "--sip-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .args(["--admin-token", TOKEN])
        .env("VOXNAV_TEST_TRUNK_PASSWORD", "s3cret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("voxnav serve starts");
    let lines = lines_of(server.stdout.take().unwrap());
    let _server = KillOnDrop(server);
    let registered = format!("voxnav: registration at 127.0.0.1:{registrar_port}: registered");
    let line = wait_for(&lines, &registered, Duration::from_secs(15)).expect("registered");
    assert!(line.ends_with("for 2 s"), "{line}");
    // The registrar checked the credentials of the REGISTER and of the refresh.
    assert!(
        finished(first, Duration::from_secs(15)),
        "the registrar accepted the credentials and the refresh"
    );

    // The registrar restarts: the next refresh reaches the new one, which challenges again.
    let second = registrar(registrar_port, "uas_registrar.xml");
    assert!(
        finished(second, Duration::from_secs(20)),
        "registered again with the restarted registrar"
    );

    // A registrar that refuses: failed with its status, counted, shown, and retried.
    let refusing = registrar(registrar_port, "uas_registrar_refuses.xml");
    let failed = format!("voxnav: registration at 127.0.0.1:{registrar_port}: failed 403");
    wait_for(&lines, &failed, Duration::from_secs(15)).expect("the refusal is reported");
    assert!(finished(refusing, Duration::from_secs(5)));
    let api = |path: &str| {
        voxnav::net::http::fetch_with_headers(
            "GET",
            &format!("http://127.0.0.1:{admin_port}{path}"),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
            Duration::from_secs(5),
        )
        .unwrap()
    };
    let (status, body) = api("/api/registration");
    assert_eq!(status, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["status"], 403, "{r}");
    let (_, metrics) = api("/metrics");
    assert_eq!(
        voxnav::ops::metrics::sample(&metrics, "voxnav_registered"),
        0.0
    );
    assert!(
        voxnav::ops::metrics::sample(
            &metrics,
            "voxnav_registration_failures_total{status=\"403\"}"
        ) >= 1.0,
        "{metrics}"
    );
    // Retried after the back-off: a registrar that accepts again registers it.
    let back = registrar(registrar_port, "uas_registrar.xml");
    wait_for(&lines, &registered, Duration::from_secs(15)).expect("registered again");
    assert!(finished(back, Duration::from_secs(20)));
    let _ = std::fs::remove_dir_all(&dir);
}
