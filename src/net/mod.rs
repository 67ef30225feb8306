//! The only socket code: a thin driver that moves bytes between sockets and the sans-IO SIP
//! endpoint (`sip::endpoint`). UDP and TCP on one address, IPv4 or IPv6.
//!
//! TCP follows RFC 3261 18.3 framing (`frame_stream`): a partial message waits for more bytes;
//! a framing error (e.g. a negative Content-Length, RFC 4475 3.1.2.3) is unrecoverable on a
//! stream, so the connection is answered 400 where possible and closed. Responses to TCP
//! requests go back on the same connection (RFC 3261 18.2.2).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sip::endpoint::Endpoint;
use crate::sip::framing::{self, StreamFrame};

/// Largest UDP datagram (65,535 minus the IPv4 and UDP headers is less; this covers both).
const MAX_DATAGRAM: usize = 65_535;
/// TCP connections open at once before new ones are refused.
const MAX_TCP_CONNECTIONS: usize = 1024;

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Binding the address failed (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The bound sockets, before serving starts (so callers can learn the port of `:0`).
pub struct SipListeners {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl SipListeners {
    /// Binds UDP and TCP on `addr`; with port 0 the TCP port follows the UDP one.
    pub async fn bind(addr: SocketAddr) -> Result<Self, NetError> {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| NetError::Bind { addr, source })?;
        let local = udp
            .local_addr()
            .map_err(|source| NetError::Bind { addr, source })?;
        let tcp = TcpListener::bind(local)
            .await
            .map_err(|source| NetError::Bind {
                addr: local,
                source,
            })?;
        Ok(Self { udp, tcp })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then waits for open connections to finish.
    pub async fn serve(self, endpoint: Endpoint, shutdown: CancellationToken) {
        let endpoint = Arc::new(Mutex::new(endpoint));
        let tracker = TaskTracker::new();
        tracker.spawn(udp_loop(self.udp, endpoint.clone(), shutdown.clone()));
        tracker.spawn(tcp_accept_loop(
            self.tcp,
            endpoint,
            shutdown.clone(),
            tracker.clone(),
        ));
        shutdown.cancelled().await;
        tracker.close();
        tracker.wait().await;
    }
}

fn lock(endpoint: &Mutex<Endpoint>) -> std::sync::MutexGuard<'_, Endpoint> {
    endpoint.lock().unwrap_or_else(|p| p.into_inner())
}

fn handle(
    endpoint: &Mutex<Endpoint>,
    bytes: &[u8],
    from: SocketAddr,
) -> Vec<crate::sip::endpoint::Transmit> {
    lock(endpoint).handle_datagram(bytes, from, std::time::Instant::now())
}

async fn udp_loop(socket: UdpSocket, endpoint: Arc<Mutex<Endpoint>>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // Sleep until the endpoint's next timer (retransmissions, transaction ends) or a datagram.
        let deadline = lock(&endpoint).poll_timeout();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = timer => {
                let out = lock(&endpoint).handle_timeout(std::time::Instant::now());
                for t in out {
                    let _ = socket.send_to(&t.bytes, t.to).await;
                }
                continue;
            }
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((n, from)) = received else {
            // ICMP errors from earlier sends surface here on some systems; keep serving.
            continue;
        };
        for t in handle(&endpoint, &buf[..n], from) {
            let _ = socket.send_to(&t.bytes, t.to).await;
        }
    }
}

async fn tcp_accept_loop(
    listener: TcpListener,
    endpoint: Arc<Mutex<Endpoint>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        if open.load(std::sync::atomic::Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (endpoint, shutdown, open) = (endpoint.clone(), shutdown.clone(), open.clone());
        tracker.spawn(async move {
            tcp_connection(stream, peer, &endpoint, &shutdown).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    endpoint: &Mutex<Endpoint>,
    shutdown: &CancellationToken,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Handle every whole message already buffered.
        loop {
            match framing::frame_stream(&buf) {
                Ok(StreamFrame::Complete(frame)) => {
                    let message = frame.message(&buf).to_vec();
                    buf.drain(..frame.consumed());
                    for t in handle(endpoint, &message, peer) {
                        if stream.write_all(&t.bytes).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(StreamFrame::Incomplete { keepalive }) => {
                    buf.drain(..keepalive);
                    break;
                }
                Err(_) => {
                    // Unrecoverable framing: answer what can be answered (the endpoint sees the
                    // bytes as a datagram and rejects them with 400), then close.
                    for t in handle(endpoint, &buf, peer) {
                        let _ = stream.write_all(&t.bytes).await;
                    }
                    return;
                }
            }
        }
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = stream.read(&mut chunk) => r,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
