//! Real calls over loopback with SIPp (Debian's sip-tester) as the caller: the built-in `uac`
//! scenario (INVITE with SDP, 200, ACK, media, BYE) must pass, and the server's media counters
//! must show audio both ways (SIPp echoes our RTP back with -rtp_echo).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use voxnav::testkit::free_udp_port;

struct Server {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start() -> Server {
        Self::start_with(&[])
    }

    /// With extra `serve` options (e.g. `--ring-ms`).
    fn start_with(options: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", "127.0.0.1:0"])
            .args(options)
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

/// The same call over TCP: SIPp connects, and the deferred 200 and everything after it come
/// back on that connection; RTP is UDP as always.
#[test]
fn sipp_uac_call_over_tcp() {
    let server = Server::start();
    let out = sipp(
        &["-t", "t1", "-sn", "uac", "-d", "1000", "-rtp_echo"],
        server.addr,
    );
    assert_sipp_ok(&out, "call over TCP");
    let media = server
        .wait_for("voxnav: media ", Duration::from_secs(10))
        .expect("media report at the end of the call");
    assert!(!media.contains(" received 0 "), "{media}");
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

/// A call placed by hand over UDP (no SIPp), for tests that need to control every packet.
struct RawCall {
    sip: UdpSocket,
    server: SocketAddr,
    call_id: String,
    tag: String,
    /// voxnav's RTP address from the 200's SDP.
    server_rtp: SocketAddr,
}

impl RawCall {
    fn request(&self, method: &str, cseq: u32, body: &str) -> String {
        let port = self.sip.local_addr().unwrap().port();
        let to_tag = if self.tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.tag)
        };
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{}{cseq}{method};rport\r\n\
             From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:ivr@127.0.0.1>{to_tag}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:x@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            self.call_id,
            self.call_id,
            body.len()
        )
    }

    /// INVITE with PCMU media at `caller_rtp`, wait for the 200, ACK.
    fn start(server: SocketAddr, call_id: &str, caller_rtp: SocketAddr) -> RawCall {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut call = RawCall {
            sip,
            server,
            call_id: call_id.to_string(),
            tag: String::new(),
            server_rtp: server,
        };
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
            caller_rtp.port()
        );
        call.send(&call.request("INVITE", 1, &sdp));
        let mut buf = [0u8; 4096];
        let ok = loop {
            let (n, _) = call.sip.recv_from(&mut buf).expect("a reply to the INVITE");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 200 ") {
                break text;
            }
        };
        call.tag = ok
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
        call.server_rtp = SocketAddr::new(server.ip(), rtp_port);
        call.send(&call.request("ACK", 1, ""));
        call
    }

    fn send(&self, message: &str) {
        self.sip.send_to(message.as_bytes(), self.server).unwrap();
    }

    fn bye(&self) {
        self.send(&self.request("BYE", 2, ""));
    }
}

/// An RTP packet of PCMU silence-ish bytes.
fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xFF; 160]);
    p
}

/// During a call, RTP from another address (an injection attempt, "RTP bleed") and garbage on
/// the RTP port are ignored; only the caller's packets count, and the call still ends cleanly.
#[test]
fn foreign_rtp_and_garbage_on_the_rtp_port_are_ignored() {
    let server = Server::start();
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let call = RawCall::start(server.addr, "inject-1", caller_rtp.local_addr().unwrap());
    for seq in 0..10u16 {
        caller_rtp
            .send_to(&rtp_packet(seq, 0x1234_5678), call.server_rtp)
            .unwrap();
        intruder
            .send_to(&rtp_packet(seq, 0x1234_5678), call.server_rtp)
            .unwrap();
        intruder
            .send_to(b"\x00garbage that is not RTP", call.server_rtp)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    caller_rtp.send_to(&[0x80; 5], call.server_rtp).unwrap(); // too short to be RTP
    call.bye();
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

/// An RTP/RTCP pair of sockets on an even port and the next one (RFC 3550 11).
fn rtp_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port.is_multiple_of(2)
            && let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1))
        {
            return (rtp, rtcp);
        }
    }
    panic!("no free even/odd port pair");
}

/// Reordered and lost packets go through the jitter buffer (played in order, the lost one
/// concealed), and RTCP flows both ways: voxnav's sender report reaches the caller's RTCP
/// port with our reception report about the caller, and the caller's report is counted.
#[test]
fn jitter_buffer_reorders_and_conceals_and_rtcp_reports_flow() {
    use voxnav::media::rtcp::{self, RtcpPacket};
    let server = Server::start();
    let (caller_rtp, caller_rtcp) = rtp_pair();
    caller_rtcp
        .set_read_timeout(Some(Duration::from_secs(9)))
        .unwrap();
    let call = RawCall::start(server.addr, "jitter-1", caller_rtp.local_addr().unwrap());
    // 0..50 with 10 and 11 swapped, 12 swapped with 13, and 20 lost.
    let mut order: Vec<u16> = (0..50).filter(|&s| s != 20).collect();
    order.swap(10, 11);
    order.swap(12, 13);
    for seq in order {
        caller_rtp
            .send_to(&rtp_packet(seq, 0xABCD), call.server_rtp)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Our own sender report to voxnav's RTCP port.
    let mut report = Vec::new();
    let sender = rtcp::SenderInfo {
        ntp: rtcp::ntp_time(std::time::SystemTime::now()),
        rtp_timestamp: 49 * 160,
        packets: 49,
        octets: 49 * 160,
    };
    rtcp::build_report(0xABCD, Some(sender), None, "caller@test", &mut report);
    let server_rtcp = SocketAddr::new(call.server_rtp.ip(), call.server_rtp.port() + 1);
    caller_rtcp.send_to(&report, server_rtcp).unwrap();
    // voxnav reports within 2.5-7.5 s of the call's start.
    let mut buf = [0u8; 1500];
    let (n, from) = caller_rtcp
        .recv_from(&mut buf)
        .expect("an RTCP report from voxnav");
    assert_eq!(from, server_rtcp);
    let packets = rtcp::parse(&buf[..n]).expect("valid compound RTCP");
    let RtcpPacket::SenderReport {
        packets: sent,
        reports,
        ..
    } = &packets[0]
    else {
        panic!("expected a sender report first: {packets:?}");
    };
    assert!(*sent > 0);
    assert_eq!(
        reports.len(),
        1,
        "one reception report block about the caller"
    );
    assert_eq!(reports[0].ssrc, 0xABCD);
    assert_eq!(reports[0].cumulative_lost, 1, "packet 20 was never sent");
    assert!(
        matches!(&packets[1], RtcpPacket::Sdes { cname: Some(c), .. } if c.starts_with("voxnav@"))
    );
    call.bye();
    let media = server
        .wait_for("voxnav: media jitter-1", Duration::from_secs(5))
        .expect("media report");
    let field = |name: &str| -> u64 {
        let words: Vec<&str> = media.split_whitespace().collect();
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1].parse().unwrap()
    };
    assert_eq!(field("received"), 49, "{media}");
    // Normally "played 49 concealed 1"; a scheduling stall on a loaded machine may turn a
    // swapped packet into a concealed one, so allow two of the four swapped to be late.
    assert!(field("played") >= 47, "{media}");
    assert!(field("concealed") >= 1, "packet 20 is concealed: {media}");
    assert_eq!(field("rtcp_received"), 1, "{media}");
}

#[test]
fn sipp_cancel_before_answer_gets_487_and_no_media_starts() {
    let server = Server::start_with(&["--ring-ms", "1500"]);
    assert_sipp_ok(
        &sipp(&["-sf", &scenario("uac_cancel.xml")], server.addr),
        "CANCEL",
    );
    let ended = server
        .wait_for("voxnav: call", Duration::from_secs(5))
        .expect("call ended");
    assert!(ended.ends_with("ended: cancelled by the caller"), "{ended}");
    assert!(
        server
            .wait_for("voxnav: media", Duration::from_millis(500))
            .is_none(),
        "a cancelled call must not start media"
    );
}

/// A retransmitted INVITE is one call, answered from its transaction; an ACK that comes late
/// (as if the first were lost) gets the 200 resent meanwhile.
#[test]
fn sipp_retransmitted_invite_and_late_ack() {
    let server = Server::start_with(&["--ring-ms", "1000"]);
    let trace = std::env::temp_dir().join(format!("voxnav-retx-{}.log", std::process::id()));
    let out = sipp(
        &[
            "-sf",
            &scenario("uac_retransmit.xml"),
            "-trace_msg",
            "-message_file",
            trace.to_str().unwrap(),
        ],
        server.addr,
    );
    assert_sipp_ok(&out, "retransmissions");
    let log = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    let lines: Vec<&str> = log.lines().collect();
    let ack = lines
        .iter()
        .position(|l| l.starts_with("ACK "))
        .expect("ACK sent");
    let oks = lines[..ack]
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 200 OK"))
        .count();
    assert!(
        oks >= 2,
        "the 200 is resent while the ACK is missing: {oks}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("SIP/2.0 100 "))
            .count(),
        1,
        "the retransmitted INVITE is answered from the transaction (180), not as a new call"
    );
    let ended = server
        .wait_for("voxnav: call ", Duration::from_secs(5))
        .expect("call ended");
    assert!(ended.ends_with("caller hung up"), "{ended}");
    assert!(
        server
            .wait_for("voxnav: call ", Duration::from_millis(500))
            .is_none(),
        "one call, not two"
    );
}

#[test]
fn sipp_session_timer_accepted_and_refreshed_by_update() {
    let server = Server::start();
    assert_sipp_ok(
        &sipp(&["-sf", &scenario("uac_session_timer.xml")], server.addr),
        "session timer",
    );
}

/// Draining for an upgrade: with a call in progress, `POST /api/drain` makes new INVITEs and
/// OPTIONS probes get 503; the call goes on to its normal end (SIPp's BYE answered), and then
/// the server exits by itself, cleanly.
#[test]
fn a_drained_server_keeps_its_call_refuses_new_ones_and_exits_after_the_last() {
    let admin_port = free_udp_port();
    let mut server = Server::start_with(&[
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
        "--admin-token",
        "drain-token",
    ]);
    let admin = |method: &str, path: &str| {
        voxnav::net::http::fetch_with_headers(
            method,
            &format!("http://127.0.0.1:{admin_port}{path}"),
            &[("Authorization", "Bearer drain-token")],
            None,
            Duration::from_secs(5),
        )
    };
    let target = server.addr;
    let caller = std::thread::spawn(move || sipp(&["-sn", "uac", "-d", "4000"], target));
    // The call is up (the server counts it) before the drain.
    let active = || {
        admin("GET", "/metrics")
            .ok()
            .map(|(_, text)| voxnav::ops::metrics::sample(&text, "voxnav_calls_active"))
    };
    let mut up = false;
    for _ in 0..100 {
        if active() == Some(1.0) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the call was answered");
    assert_eq!(admin("GET", "/readyz").unwrap().0, 200);
    assert_eq!(admin("POST", "/api/drain").unwrap().0, 200);
    let line = server
        .wait_for("voxnav: draining", Duration::from_secs(5))
        .expect("the server says it drains");
    assert_eq!(line, "voxnav: draining, 1 calls in progress");
    assert_eq!(admin("GET", "/readyz").unwrap().0, 503);

    // New work is refused: a load balancer's OPTIONS probe, and a new call.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = probe.local_addr().unwrap();
    for method in ["OPTIONS", "INVITE"] {
        let request = format!(
            "{method} sip:ivr@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKdrain{method};rport\r\n\
             From: <sip:probe@{local}>;tag=1\r\nTo: <sip:ivr@{target}>\r\nCall-ID: drain-{method}\r\n\
             CSeq: 1 {method}\r\nContact: <sip:probe@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        probe.send_to(request.as_bytes(), target).unwrap();
        let mut buf = [0u8; 4096];
        let reply = loop {
            let (n, _) = probe.recv_from(&mut buf).expect("an answer");
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !reply.starts_with("SIP/2.0 100") {
                break reply;
            }
        };
        assert!(reply.starts_with("SIP/2.0 503 "), "{method}: {reply}");
        assert!(reply.contains("Retry-After: "), "{reply}");
    }

    // The call in progress ends normally, then the server exits on its own.
    assert_sipp_ok(&caller.join().unwrap(), "the call kept through the drain");
    server
        .wait_for("voxnav: drained", Duration::from_secs(10))
        .expect("drained once the call ended");
    let status = voxnav::testkit::wait_exit(&mut server.child, Duration::from_secs(10))
        .expect("the server exits");
    assert!(status.success(), "{status}");
}

/// A peer outside the trunks that authenticates instead (SIPp answering the 401 challenge with
/// MD5 digest, the algorithm SIPp knows; SHA-256 is checked against RFC 7616's example in the
/// unit tests): the right password gets the call, the wrong one gets challenged again and no
/// call is taken.
#[test]
fn a_peer_with_digest_credentials_calls_and_a_wrong_password_does_not() {
    let dir = voxnav::testkit::temp_dir("sip-digest");
    let config = dir.join("voxnav.yaml");
    let md5 = voxnav::sip::digest::ha1(
        voxnav::sip::digest::Algorithm::Md5,
        "pbx",
        "voxnav",
        "s3cret",
    );
    std::fs::write(
        &config,
        format!(
            "sip:\n  trunks: [127.0.0.2]\n  digest:\n    realm: voxnav\n    algorithms: [MD5]\n    \
             users:\n      pbx: {{ md5: \"{md5}\" }}\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/sip-test/uac_auth.xml");
    let out = sipp(
        &["-sf", scenario, "-au", "pbx", "-ap", "s3cret", "-d", "500"],
        server.addr,
    );
    assert_sipp_ok(&out, "a call with the right credentials");
    server
        .wait_for("voxnav: call ", Duration::from_secs(10))
        .expect("the call was taken and ended");
    let out = sipp(
        &[
            "-sf", scenario, "-au", "pbx", "-ap", "guess", "-d", "500", "-timeout", "8",
        ],
        server.addr,
    );
    assert!(
        !out.status.success(),
        "the wrong password must not get a call"
    );
    assert!(
        server
            .wait_for("voxnav: call ", Duration::from_secs(2))
            .is_none(),
        "no call was taken"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
