//! Dialplan `http` nodes against a local HTTPS backend with a certificate authority made here
//! (rcgen), served by rustls on loopback:
//!
//! - with the CA configured for the backend, the lookup works and the backend receives the
//!   configured credentials (which never show in what the call records);
//! - with the built-in roots only, or against a self-signed certificate, the TLS handshake is
//!   refused and the caller hears the dialplan's spoken fallback;
//! - garbage instead of TLS, and a backend that never answers, fail within the node's timeout.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use voxnav::dialplan::engine::{CallEngine, Event, Hotline};
use voxnav::dialplan::sim;
use voxnav::net::backend::{BackendConfig, Backends};

const PLAN: &str = r#"
name: tls
vars:
  orders_api: "https://127.0.0.1:9"
intents:
  status:
    examples: [where is my order, order status, track my order]
prompts:
  menu: "What do you need?"
handlers: { no_input: bye, no_match: bye, max_turns: bye }
start: lookup
nodes:
  lookup:
    http: { url: "{{orders_api}}/orders/472198", timeout_ms: 3000, set: { status: status } }
    next: tell
    error: sorry
  tell:
    say: "Order 472198 is {{status}}."
    next: bye
  sorry:
    say: "The order system cannot be reached right now."
    next: bye
  bye:
    hangup: "Goodbye."
"#;

/// A certificate authority and a certificate for 127.0.0.1 it signed; and a self-signed one.
struct Pki {
    ca_pem: String,
    signed: (Vec<u8>, Vec<u8>),
    self_signed: (Vec<u8>, Vec<u8>),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "voxnav test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let lone_key = KeyPair::generate().unwrap();
    let lone = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&lone_key)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        signed: (leaf.der().to_vec(), leaf_key.serialize_der()),
        self_signed: (lone.der().to_vec(), lone_key.serialize_der()),
    }
}

/// An HTTPS order service on loopback: answers every request with a shipped order and keeps
/// the Authorization header it received.
fn https_backend(cert: (Vec<u8>, Vec<u8>)) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.0)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.1)),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (config, kept) = (config.clone(), kept.clone());
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut reader = BufReader::new(&mut tls);
                let mut auth = String::new();
                loop {
                    let mut line = String::new();
                    // A refused handshake ends here (the client hung up).
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        auth = value.trim().to_string();
                    }
                }
                kept.lock().unwrap().push(auth);
                let body = r#"{"status": "shipped"}"#;
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (addr, seen)
}

/// What the bot says on a call to PLAN whose backend is `api`, through `backends`; and the
/// call's records as JSON.
fn call(backends: &Backends, api: &str) -> (String, String) {
    let plan = voxnav::dialplan::load_str("tls.yaml", PLAN).unwrap();
    let hotline = Arc::new(Hotline::build(
        plan,
        Arc::new(voxnav::nlu::intent::BagOfWords),
    ));
    let vars = [("orders_api".to_string(), api.to_string())].into();
    let mut engine = CallEngine::new(hotline, vars);
    let fetch = |m: &str, u: &str, b: Option<&str>, t| backends.fetch(m, u, b, t);
    let turn = sim::step(&mut engine, Event::Start, &fetch).expect("the call starts");
    (turn.decision.say.join(" "), sim::to_json(&turn).to_string())
}

#[test]
fn an_https_backend_is_reached_with_its_ca_and_refused_without_it() {
    let pki = pki();
    let dir = voxnav::testkit::temp_dir("backends");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let (addr, seen) = https_backend(pki.signed.clone());
    let api = format!("https://{addr}");
    let trusted = Backends::new(&[BackendConfig {
        prefix: format!("{api}/"),
        ca: Some(ca_file.clone()),
        headers: vec![("Authorization".into(), "Bearer s3cret-token".into())],
    }])
    .unwrap();

    // Trusted: the lookup works, and the credentials went to the backend only.
    let (said, record) = call(&trusted, &api);
    assert!(said.contains("Order 472198 is shipped"), "{said}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["Bearer s3cret-token".to_string()]
    );
    assert!(!record.contains("s3cret"), "{record}");

    // Mozilla's roots do not vouch for a CA made here: refused, the caller hears the fallback.
    let (said, _) = call(&Backends::default(), &api);
    assert!(said.contains("cannot be reached"), "{said}");
    let e = Backends::default()
        .fetch("GET", &format!("{api}/x"), None, Duration::from_secs(3))
        .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("certificate"),
        "{e}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "no request got through");

    // A self-signed certificate is not one our CA signed: refused too, credentials unsent.
    let (lone, lone_seen) = https_backend(pki.self_signed.clone());
    let lone_api = format!("https://{lone}");
    let pinned = Backends::new(&[BackendConfig {
        prefix: format!("{lone_api}/"),
        ca: Some(ca_file.clone()),
        headers: vec![("Authorization".into(), "Bearer s3cret-token".into())],
    }])
    .unwrap();
    let (said, _) = call(&pinned, &lone_api);
    assert!(said.contains("cannot be reached"), "{said}");
    assert!(lone_seen.lock().unwrap().is_empty());

    // Garbage instead of a TLS server, and a server that never answers: errors within the
    // node's timeout, never a hang.
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_addr = garbage.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in garbage.incoming().flatten() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nthis is not TLS at all\r\n");
        }
    });
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _held = std::thread::spawn(move || {
        let _open: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(10));
    });
    for addr in [garbage_addr, silent_addr] {
        let started = Instant::now();
        let r = trusted.fetch(
            "GET",
            &format!("https://{addr}/orders/1"),
            None,
            Duration::from_millis(800),
        );
        assert!(r.is_err(), "{addr}: {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{addr}: bounded by the timeout, took {:?}",
            started.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
