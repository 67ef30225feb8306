//! A real softphone calls voxnav: baresip (Debian's baresip-core), headless, with its
//! microphone replaced by a WAV file (`aufile`) and everything it hears recorded (`sndfile`).
//! The caller's audio holds silence, the DTMF tones of `5` and then `#`, in-band (the fallback
//! for trunks that send tones in audio). The far end must hear voxnav's prompt (three 440 Hz
//! beeps) and the echo of `5`; voxnav must detect both digits and hang up on `#`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use voxnav::media::dtmf::ToneDetector;
use voxnav::media::wav::{self, Audio};
use voxnav::testkit::{KillOnDrop, free_udp_port};

fn tone(freqs: &[f32], secs: f32) -> Vec<f32> {
    (0..(secs * 8000.0) as usize)
        .map(|i| {
            let t = i as f32 / 8000.0;
            freqs
                .iter()
                .map(|f| 0.2 * (2.0 * std::f32::consts::PI * f * t).sin())
                .sum()
        })
        .collect()
}

/// Energy at `freq` relative to the whole signal, per 20 ms block (Goertzel).
fn fraction_at(block: &[f32], freq: f32) -> f32 {
    let k = 2.0 * (2.0 * std::f32::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s = x + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    let total: f32 = block.iter().map(|x| x * x).sum::<f32>() * block.len() as f32 / 2.0;
    if total <= 1e-9 { 0.0 } else { power / total }
}

/// What a baresip call to voxnav left: voxnav's stdout report, its log, and what baresip
/// heard.
struct Call {
    report: Vec<String>,
    log: String,
    heard: Vec<f32>,
}

/// How baresip reaches voxnav.
enum Dial {
    /// UDP, to the address voxnav prints first.
    Udp,
    /// TLS to the address voxnav prints second, trusting the CA in this PEM file.
    Tls(std::path::PathBuf),
}

/// baresip (with `modules` loaded and `account_params` on its account) calls a voxnav started
/// with `server_args`, playing silence, the DTMF tones of `5`, silence, `#`.
fn baresip_call(
    name: &str,
    server_args: &[&str],
    modules: &[&str],
    account_params: &str,
    dial: Dial,
) -> Call {
    let dir = std::env::temp_dir().join(format!("voxnav-baresip-{name}-{}", std::process::id()));
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    // The caller's "microphone": 1.5 s silence, 5, 1.5 s, #, 3 s.
    let silence = |s: f32| vec![0.0f32; (s * 8000.0) as usize];
    let mut mic = silence(1.5);
    mic.extend(tone(&[770.0, 1336.0], 0.2));
    mic.extend(silence(1.5));
    mic.extend(tone(&[941.0, 1477.0], 0.2));
    mic.extend(silence(3.0));
    let mic_path = dir.join("caller.wav");
    wav::write(
        &mic_path,
        &Audio {
            samples: mic,
            sample_rate: 8000,
        },
    )
    .unwrap();

    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", "127.0.0.1:0"])
            .args(server_args)
            .env("VOXNAV_LOG", "voxnav=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .expect("server starts"),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let mut addr_line = || {
        let line = lines.next().unwrap().unwrap();
        line.rsplit(' ').next().unwrap().to_string()
    };
    let udp = addr_line();
    let (target, ca) = match &dial {
        Dial::Udp => (format!("sip:ivr@{udp}"), String::new()),
        Dial::Tls(ca) => (
            format!("sip:ivr@{};transport=tls", addr_line()),
            format!("sip_cafile {}\n", ca.display()),
        ),
    };

    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let extra: String = modules.iter().map(|m| format!("module {m}\n")).collect();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\nnet_interface 127.0.0.1\n\
             audio_player aubridge,spk\naudio_alert aubridge,spk\naudio_source aufile,{}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module aubridge.so\nmodule sndfile.so\n{extra}module_app account.so\n\
             module_app menu.so\nsnd_path {}\n{ca}",
            free_udp_port(),
            mic_path.display(),
            rec.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!("<sip:caller@127.0.0.1>;regint=0{account_params}\n"),
    )
    .unwrap();
    let baresip = Command::new("baresip")
        .args(["-f", conf.to_str().unwrap()])
        .args(["-e", &format!("/dial {target}"), "-t", "7"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("baresip is installed (baresip-core)");
    assert!(baresip.success(), "baresip exited with {baresip}");
    let _ = server.0.kill();
    let report: Vec<String> = lines.map_while(Result::ok).collect();
    // What baresip heard (decoded from voxnav's RTP).
    let heard_path = std::fs::read_dir(&rec)
        .unwrap()
        .map_while(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip recorded what it heard: {report:?}"));
    let heard = wav::read(Path::new(&heard_path)).expect("a readable recording");
    assert_eq!(heard.sample_rate, 8000);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Call {
        report,
        log,
        heard: heard.samples,
    }
}

/// voxnav detected both digits from the caller's audio and hung up on `#`; the caller heard
/// the prompt (three 440 Hz beeps) and the echo of `5`: audio went both ways.
fn assert_audio_both_ways(call: &Call) {
    let joined = call.report.join("\n");
    assert!(
        joined.contains("hanging up") && joined.contains("caller pressed #"),
        "{joined}"
    );
    let media = (call.report.iter())
        .find(|l| l.starts_with("voxnav: media "))
        .unwrap_or_else(|| panic!("media report: {joined}"));
    assert!(media.ends_with("digits \"5#\""), "{media}");
    let beep_blocks = (call.heard.chunks_exact(160))
        .filter(|b| fraction_at(b, 440.0) > 0.8)
        .count();
    // Three 200 ms beeps: 30 blocks of 20 ms (a few lost at the edges).
    assert!(
        (20..=40).contains(&beep_blocks),
        "440 Hz prompt blocks heard: {beep_blocks}"
    );
    let mut detector = ToneDetector::default();
    let digits: Vec<char> = (call.heard.chunks(160))
        .flat_map(|b| detector.feed(b))
        .collect();
    assert_eq!(digits, vec!['5'], "the echo of 5 reached the caller");
}

#[test]
fn baresip_calls_voxnav_hears_the_prompt_and_the_digit_echo() {
    let call = baresip_call("plain", &[], &[], "", Dial::Udp);
    assert_audio_both_ways(&call);
}

/// The same call with SRTP (SDES keys, baresip's `srtp` module, mandatory on both sides):
/// voxnav answers RTP/SAVP with its own key, and the audio each way is encrypted and
/// authenticated. The one packet refused is baresip's RTCP APP "PING", which it sends in the
/// clear: RFC 3711 3.4 has every RTCP packet of an SRTP session authenticated.
#[test]
fn baresip_calls_voxnav_over_srtp() {
    let call = baresip_call(
        "srtp",
        &["--srtp", "required"],
        &["srtp.so"],
        ";mediaenc=srtp-mand",
        Dial::Udp,
    );
    assert_audio_both_ways(&call);
    let media = (call.report.iter())
        .find(|l| l.starts_with("voxnav: media "))
        .unwrap();
    let rejected: u64 = media
        .split(" srtp_rejected ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        rejected <= 2,
        "only baresip's clear RTCP pings refused: {media}"
    );
}

/// A certificate authority and a server certificate for 127.0.0.1 it signed, as PEM files in
/// `dir`: (CA, chain, key).
fn test_certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::new(ca, ca_key))
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("chain.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, server.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// SIP over TLS carrying SDES keys for SRTP (the combination that keeps the keys private):
/// baresip dials voxnav's TLS listener and the call's audio goes both ways encrypted. Before
/// it, garbage and a plain SIP message sent to the TLS port only get that connection closed.
#[test]
fn baresip_calls_voxnav_over_tls_with_srtp() {
    let dir = std::env::temp_dir().join(format!("voxnav-tls-certs-{}", std::process::id()));
    let (ca, chain, key) = test_certificates(&dir);
    let tls_port = free_udp_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let server_args = [
        "--srtp",
        "required",
        "--tls-listen",
        &listen,
        "--tls-cert",
        chain.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let garbage = std::thread::spawn(move || {
        use std::io::{Read, Write};
        // Until the listener is up, connecting is refused: try for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut stream = loop {
            match std::net::TcpStream::connect(("127.0.0.1", tls_port)) {
                Ok(s) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("the TLS listener: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let _ = stream.write_all(
            b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n\x16\x03\x01garbage",
        );
        let mut buf = [0u8; 256];
        // Closed by the server (0 bytes or a reset), and never a SIP answer in the clear.
        match stream.read(&mut buf) {
            Ok(n) => assert!(!buf[..n].starts_with(b"SIP/2.0"), "{:?}", &buf[..n]),
            Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "not closed: {e}"),
        }
    });
    let call = baresip_call(
        "tls",
        &server_args,
        &["srtp.so"],
        ";mediaenc=srtp-mand",
        Dial::Tls(ca),
    );
    garbage.join().unwrap();
    assert_audio_both_ways(&call);
    assert!(
        call.log.contains("call answered") && call.log.contains("transport=\"tls\""),
        "the call came over TLS: {}",
        call.log
    );
    let _ = std::fs::remove_dir_all(&dir);
}
