//! One DNS request and its response, over UDP, with TCP when the UDP answer
//! comes back truncated: what `wait` and NOTIFY need from the network, and
//! nothing more (no retries across servers, no caching, no recursion).
//!
//! Messages are built by the callers; this module only moves bytes and
//! checks that the answer is the response to the request (RFC 1035 §7.3:
//! same ID, same question, from the address the request went to).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use hickory_proto::op::{Message, MessageType};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The EDNS payload size we offer: the DNS Flag Day 2020 value, which avoids
/// IP fragmentation.
pub const EDNS_PAYLOAD: u16 = 1232;

/// Send `request` to `server` over UDP and wait up to `timeout` for its
/// response; when that response has TC set, ask again over TCP (RFC 1035
/// §4.2.1, RFC 7766 §5).
pub async fn exchange(
    server: SocketAddr,
    request: &Message,
    timeout: Duration,
) -> io::Result<Message> {
    let response = udp(server, request, timeout).await?;
    if response.metadata.truncation {
        return tcp(server, request, timeout).await;
    }
    Ok(response)
}

/// One request over UDP; answers that are not the response to `request`
/// are ignored until `timeout`.
pub async fn udp(server: SocketAddr, request: &Message, timeout: Duration) -> io::Result<Message> {
    let bytes = request.to_vec().map_err(io::Error::other)?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // connect(): the kernel drops datagrams from any other address.
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0u8; 65535];
    tokio::time::timeout(timeout, async {
        loop {
            let n = socket.recv(&mut buf).await?;
            if let Some(response) = buf.get(..n).and_then(|b| matching(request, b)) {
                return Ok(response);
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

/// One request over TCP, with the two-octet length prefix of RFC 1035 §4.2.2.
pub async fn tcp(server: SocketAddr, request: &Message, timeout: Duration) -> io::Result<Message> {
    let bytes = request.to_vec().map_err(io::Error::other)?;
    let len = u16::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too long"))?;
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(server).await?;
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        stream.write_all(&out).await?;
        let n = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(n)];
        stream.read_exact(&mut buf).await?;
        matching(request, &buf).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the answer does not match the question",
            )
        })
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer over TCP"))?
}

/// `bytes` decoded, if it is a response to `request`.
fn matching(request: &Message, bytes: &[u8]) -> Option<Message> {
    let response = Message::from_vec(bytes).ok()?;
    let same = response.metadata.message_type == MessageType::Response
        && response.metadata.id == request.metadata.id
        && response.metadata.op_code == request.metadata.op_code
        // A server may leave the question out of an error response.
        && (response.queries.is_empty() || response.queries == request.queries);
    same.then_some(response)
}
