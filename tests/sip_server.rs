//! The SIP server over real loopback sockets: RFC 4475 torture messages over UDP get their
//! verdicts, garbage and oversized datagrams are survived, TCP framing works in pieces and
//! closes on unrecoverable framing, IPv6 works, and SIGTERM stops the server cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(listen: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .expect("address line");
        Server { child, addr }
    }

    /// Sends SIGTERM and checks the server exits by itself, successfully.
    fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        for _ in 0..50 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill().ok();
        panic!("server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    /// A test that fails before `stop` must not leave its server running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn options(call_id: &str, via_host: &str) -> String {
    format!(
        "OPTIONS sip:ivr@{via_host} SIP/2.0\r\nVia: SIP/2.0/UDP {via_host};branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:probe@{via_host}>;tag=1\r\nTo: <sip:ivr@{via_host}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `bytes` and waits for the reply with the same Call-ID: earlier requests' final
/// responses are retransmitted until ACKed (Timer G), so other replies may arrive in between.
fn exchange(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Option<String> {
    let call_id = |text: &str| {
        text.lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                let name = name.trim();
                (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_default()
    };
    let wanted = call_id(&String::from_utf8_lossy(bytes));
    sock.send_to(bytes, to).unwrap();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        if call_id(&reply) == wanted {
            return Some(reply);
        }
    }
}

/// The port a reply to `message` sent from 127.0.0.1 will be addressed to (0: any, via rport).
fn reply_port(message: &[u8]) -> u16 {
    let Ok(frame) = voxnav::sip::framing::frame_datagram(message) else {
        return 5060;
    };
    let Some(env) = voxnav::sip::Envelope::scan(message, &frame) else {
        return 0;
    };
    let probe: SocketAddr = "127.0.0.1:0".parse().unwrap();
    voxnav::sip::response::target(&env, probe).port()
}

fn status(reply: &str) -> &str {
    reply.split(' ').nth(1).unwrap_or_default()
}

#[test]
fn torture_messages_over_udp_get_their_verdicts_and_the_server_keeps_serving() {
    let server = Server::start("127.0.0.1:0");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sip-torture-rfc4475");
    // Status expected first on the wire: the rejection; 200 for OPTIONS; 100 Trying for a new
    // INVITE (its 200 follows); 405 for REGISTER and MESSAGE (not a registrar); 481 for
    // wsinv, an INVITE with a To tag for a dialog that does not exist; nothing for drops,
    // ACKs and responses. The torture INVITEs' SDP names 192.0.2.x: no RTP goes there, since
    // media is only sent to the signalling IP or after latching (tests/sip_calls.rs checks).
    let expected = [
        ("wsinv", Some("481")),
        ("intmeth", Some("501")),
        ("esc01", Some("100")),
        ("escnull", Some("405")),
        ("esc02", Some("501")),
        ("lwsdisp", Some("200")),
        ("longreq", Some("100")),
        ("dblreq", Some("405")),
        ("semiuri", Some("200")),
        ("transports", Some("200")),
        ("mpart01", Some("405")),
        ("unreason", None),
        ("noreason", None),
        ("badinv01", Some("400")),
        ("clerr", Some("400")),
        ("ncl", Some("400")),
        ("scalar02", Some("400")),
        ("scalarlg", None),
        ("quotbal", Some("400")),
        ("ltgtruri", Some("400")),
        ("lwsruri", Some("400")),
        ("lwsstart", Some("400")),
        ("trws", Some("400")),
        ("escruri", Some("400")),
        ("baddate", Some("100")),
        ("regbadct", Some("400")),
        ("badaspec", Some("400")),
        ("baddn", Some("400")),
        ("badvers", Some("505")),
        ("mismatch01", Some("400")),
        ("mismatch02", Some("501")),
        ("bigcode", None),
        ("badbranch", Some("200")),
        ("insuf", Some("400")),
        ("unkscm", Some("416")),
        ("novelsc", Some("416")),
        ("unksm2", Some("405")),
        ("bext01", Some("420")),
        ("invut", Some("415")),
        ("regaut01", Some("405")),
        ("multi01", Some("400")),
        ("mcl01", Some("400")),
        ("bcast", None),
        ("zeromf", Some("200")),
        ("cparam01", Some("405")),
        ("cparam02", Some("405")),
        ("regescrt", Some("405")),
        ("sdp01", Some("406")),
        ("inv2543", Some("100")),
        ("test", None),
    ];
    let mut wrong = Vec::new();
    for (name, want) in expected {
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).unwrap();
        // Without rport the reply goes to the source IP at the Via's sent-by port (RFC 3261
        // 18.2.2), so send from a socket bound to that port to be there when it arrives.
        let reply_port = reply_port(&bytes);
        let sender = UdpSocket::bind(("127.0.0.1", reply_port))
            .unwrap_or_else(|e| panic!("{name}: cannot bind 127.0.0.1:{reply_port}: {e}"));
        sender
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let got = exchange(&sender, server.addr, &bytes);
        let got_status = got.as_deref().map(status);
        if got_status != want {
            wrong.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Garbage, an empty datagram and a near-maximum datagram: no answer, no crash.
    for junk in [
        vec![],
        vec![0xffu8; 3],
        vec![b'A'; 60_000],
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
    ] {
        assert_eq!(exchange(&sock, server.addr, &junk), None);
    }
    // The next valid request is still served.
    let reply = exchange(
        &sock,
        server.addr,
        options("after-torture", "127.0.0.1").as_bytes(),
    )
    .unwrap();
    assert_eq!(status(&reply), "200", "{reply}");
    assert!(
        reply.contains(&format!("rport={}", sock.local_addr().unwrap().port())),
        "{reply}"
    );
    server.stop();
}

#[test]
fn tcp_frames_messages_in_pieces_and_closes_on_broken_framing() {
    let server = Server::start("127.0.0.1:0");
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let msg = options("tcp-1", "127.0.0.1").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let (a, b) = msg.as_bytes().split_at(40);
    tcp.write_all(b"\r\n\r\n").unwrap(); // keep-alive first (RFC 5626 style)
    tcp.write_all(a).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    tcp.write_all(b).unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));

    // A call over TCP: 100 at once, then the deferred 200 (with our SDP offer, as the INVITE
    // has none) on the same connection (RFC 3261 18.2.2).
    let invite = msg
        .replace("OPTIONS sip", "INVITE sip")
        .replace("1 OPTIONS", "1 INVITE")
        .replace("tcp-1", "tcp-invite");
    tcp.write_all(invite.as_bytes()).unwrap();
    let mut replies = String::new();
    while !replies.contains("SIP/2.0 200 OK") {
        let n = tcp
            .read(&mut buf)
            .expect("the 200 arrives on the connection");
        assert!(n > 0, "connection closed early: {replies}");
        replies.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(replies.starts_with("SIP/2.0 100 Trying"), "{replies}");
    assert!(replies.contains("m=audio "), "{replies}");

    // A negative Content-Length is unrecoverable on a stream: 400, then the server closes.
    let ncl = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/sip-torture-rfc4475/ncl.dat"),
    )
    .unwrap();
    tcp.write_all(&ncl).unwrap();
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).unwrap();
    assert!(
        String::from_utf8_lossy(&rest).starts_with("SIP/2.0 400 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    server.stop();
}

#[test]
fn ipv6_loopback_works() {
    let server = Server::start("[::1]:0");
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let reply = exchange(&sock, server.addr, options("v6", "[::1]").as_bytes()).unwrap();
    assert_eq!(status(&reply), "200", "{reply}");
    assert!(reply.contains("received=::1"), "{reply}");
    server.stop();
}
