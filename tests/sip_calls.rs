//! Real calls over loopback with SIPp (Debian's sip-tester) as the caller: the built-in `uac`
//! scenario (INVITE with SDP, 200, ACK, media, BYE) must pass, and the server's media counters
//! must show audio both ways (SIPp echoes our RTP back with -rtp_echo).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Server {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("listening line");
        let addr = first.rsplit(' ').next().unwrap().parse().expect("address");
        Server { child, addr, lines }
    }

    /// The first line starting with `prefix` within `timeout`.
    fn wait_for(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sipp(args: &[&str], target: SocketAddr) -> std::process::Output {
    let (sip_port, media_port) = (free_udp_port(), free_udp_port() & !1);
    Command::new("sipp")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &sip_port.to_string(),
            "-mp",
            &media_port.to_string(),
        ])
        .args([
            "-m",
            "1",
            "-l",
            "1",
            "-timeout",
            "30",
            "-timeout_error",
            "-nostdin",
        ])
        .args(["-buff_size", "4194304", "-recv_timeout", "10000"])
        .args(args)
        .arg(target.to_string())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("sipp is installed (sip-tester)")
}

#[test]
fn sipp_uac_basic_call_with_audio_both_ways() {
    let server = Server::start();
    let out = sipp(&["-sn", "uac", "-d", "2000", "-rtp_echo"], server.addr);
    assert!(
        out.status.success(),
        "sipp failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let media = server
        .wait_for("voxnav: media ", Duration::from_secs(10))
        .expect("media report at the end of the call");
    // "voxnav: media CALL: sent N received M foreign F digits D"
    let field = |name: &str| -> u64 {
        let words: Vec<&str> = media.split_whitespace().collect();
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1].parse().unwrap()
    };
    // About 2 s of call: ~100 packets of 20 ms sent; SIPp echoed them back.
    assert!(field("sent") >= 60, "{media}");
    assert!(field("received") >= 30, "{media}");
    assert_eq!(field("foreign"), 0, "{media}");
}

#[test]
fn sipp_dtmf_reaches_the_server_and_pound_hangs_up() {
    let server = Server::start();
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-test/uac_dtmf.xml");
    let out = sipp(&["-sf", scenario.to_str().unwrap()], server.addr);
    assert!(
        out.status.success(),
        "sipp failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let hangup = server
        .wait_for("voxnav: hanging up", Duration::from_secs(5))
        .expect("server hung up");
    assert!(hangup.contains("caller pressed #"), "{hangup}");
    let media = server
        .wait_for("voxnav: media ", Duration::from_secs(5))
        .expect("media report");
    assert!(media.ends_with("digits \"1#\""), "{media}");
}

/// An INVITE from 127.0.0.1 whose SDP names another address (127.0.0.2 stands in for a third
/// party, so nothing leaves the machine even if this fails): no RTP is sent there unless RTP
/// first arrives from it.
#[test]
fn media_is_not_sent_to_an_address_other_than_the_caller() {
    let server = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let victim = UdpSocket::bind("127.0.0.2:0").expect("127.0.0.2 is loopback on Linux");
    victim
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        victim.local_addr().unwrap().port()
    );
    let invite = format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKrefl;rport\r\n\
         From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: reflect-1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:x@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sock.send_to(invite.as_bytes(), server.addr).unwrap();
    let mut buf = [0u8; 4096];
    let mut answered = false;
    for _ in 0..3 {
        let (n, _) = sock.recv_from(&mut buf).expect("a reply");
        answered |= String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 ");
    }
    assert!(answered, "the call is answered");
    assert!(
        victim.recv_from(&mut buf).is_err(),
        "RTP was sent to the third-party address"
    );
}

fn scenario(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip-test")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn assert_sipp_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: sipp failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sipp_options_ping_invite_without_sdp_and_hold_resume() {
    let server = Server::start();
    assert_sipp_ok(
        &sipp(&["-sf", &scenario("options.xml")], server.addr),
        "OPTIONS",
    );
    assert_sipp_ok(
        &sipp(&["-sf", &scenario("uac_nosdp.xml")], server.addr),
        "INVITE without SDP",
    );
    let ended = server
        .wait_for("voxnav: call ", Duration::from_secs(5))
        .expect("call ended");
    assert!(ended.ends_with("caller hung up"), "{ended}");
    assert_sipp_ok(
        &sipp(&["-sf", &scenario("uac_hold.xml")], server.addr),
        "hold/resume",
    );
}

/// During a call, RTP from another address (an injection attempt, "RTP bleed") and garbage on
/// the RTP port are ignored; only the caller's packets count, and the call still ends cleanly.
#[test]
fn foreign_rtp_and_garbage_on_the_rtp_port_are_ignored() {
    let server = Server::start();
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sip.local_addr().unwrap().port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        caller_rtp.local_addr().unwrap().port()
    );
    let request = |method: &str, cseq: u32, to_tag: &str, body: &str| {
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKinj{cseq}{method};rport\r\n\
             From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:ivr@127.0.0.1>{to_tag}\r\nCall-ID: inject-1\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:x@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    sip.send_to(request("INVITE", 1, "", &sdp).as_bytes(), server.addr)
        .unwrap();
    let mut buf = [0u8; 4096];
    let ok = loop {
        let (n, _) = sip.recv_from(&mut buf).expect("a reply to the INVITE");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200 ") {
            break text;
        }
    };
    let tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let rtp_port: u16 = ok
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("m=audio port in the 200");
    sip.send_to(
        request("ACK", 1, &format!(";tag={tag}"), "").as_bytes(),
        server.addr,
    )
    .unwrap();
    let server_rtp = SocketAddr::new(server.addr.ip(), rtp_port);
    let packet = |seq: u16| {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(&[0xFF; 160]);
        p
    };
    for seq in 0..10u16 {
        caller_rtp.send_to(&packet(seq), server_rtp).unwrap();
        intruder.send_to(&packet(seq), server_rtp).unwrap();
        intruder
            .send_to(b"\x00garbage that is not RTP", server_rtp)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    caller_rtp.send_to(&[0x80; 5], server_rtp).unwrap(); // too short to be RTP
    sip.send_to(
        request("BYE", 2, &format!(";tag={tag}"), "").as_bytes(),
        server.addr,
    )
    .unwrap();
    let media = server
        .wait_for("voxnav: media inject-1", Duration::from_secs(5))
        .expect("media report");
    assert!(
        media.contains("received 10 "),
        "only the caller's 10 packets count: {media}"
    );
    assert!(
        media.contains("foreign 20 "),
        "10 injected packets and 10 garbage datagrams: {media}"
    );
}
