//! Bad input on real TCP: garbage, a truncated frame, an oversized frame, a malformed payload
//! and a call before the handshake each get a `Refused` frame and a closed connection, while a
//! well-behaved client on another connection keeps working without losing an update.

#![cfg(not(madsim))]

use std::net::SocketAddr;

use crucial_dso::core::codec::{decode_frame, encode_frame};
use crucial_dso::core::object::CallId;
use crucial_dso::core::protocol::{Action, Call, Request, Response, PROTOCOL_VERSION};
use crucial_dso::ServerBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FRAME_BYTES_MAX: usize = 1024;

fn hello() -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_frame(&Request::Hello { protocol_version: PROTOCOL_VERSION, token: None }, &mut bytes);
    bytes
}

/// Sends `bytes` (then closes our sending side if `close`), reads until the server closes, and
/// returns the frames it sent.
async fn exchange(addr: SocketAddr, bytes: &[u8], close: bool) -> Vec<Response> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if close {
        stream.shutdown().await.unwrap();
    }
    let mut received = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut received));
    read.await.expect("the server closes a misbehaving connection").unwrap();
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some((frame, used)) = decode_frame::<Response>(&received[at..], 1 << 20).unwrap() {
        frames.push(frame);
        at += used;
    }
    assert_eq!(at, received.len(), "only whole frames come back");
    frames
}

fn assert_refused(frames: &[Response], reason_contains: &str) {
    match frames.last() {
        Some(Response::Refused { reason }) => {
            assert!(reason.contains(reason_contains), "reason {reason:?} should mention {reason_contains:?}")
        }
        other => panic!("expected a Refused frame, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_connections_are_closed_and_others_keep_working() {
    let server = ServerBuilder::new()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .frame_bytes_max(FRAME_BYTES_MAX)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let good = server.connect().await.unwrap();
    let counter = good.atomic_long("steady");

    let workload = tokio::spawn({
        let counter = counter.clone();
        async move {
            let mut acknowledged = 0;
            for _ in 0..500 {
                counter.increment_and_get().await.unwrap();
                acknowledged += 1;
            }
            acknowledged
        }
    });

    // Garbage: an HTTP request reads as a huge length prefix.
    assert_refused(&exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false).await, "over the limit");

    // A frame over the limit, refused from its length prefix alone.
    let mut oversized = hello();
    oversized.extend_from_slice(&((FRAME_BYTES_MAX as u32) + 1).to_be_bytes());
    oversized.extend_from_slice(&[0; 16]);
    let frames = exchange(addr, &oversized, false).await;
    assert!(matches!(frames.first(), Some(Response::Welcome { .. })));
    assert_refused(&frames, "over the limit");

    // A truncated frame: the prefix promises 100 bytes, 10 arrive, then EOF.
    let mut truncated = hello();
    truncated.extend_from_slice(&100u32.to_be_bytes());
    truncated.extend_from_slice(&[1; 10]);
    assert_refused(&exchange(addr, &truncated, true).await, "inside a frame");

    // A well-sized frame whose payload is not a message.
    let mut malformed = hello();
    malformed.extend_from_slice(&8u32.to_be_bytes());
    malformed.extend_from_slice(&[0xff; 8]);
    assert_refused(&exchange(addr, &malformed, false).await, "malformed");

    // A small frame whose payload claims a string of 2^64 - 1 bytes: refused, not allocated.
    let mut huge_claim = hello();
    let payload = [1u8, 0, 1, 1, 253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    huge_claim.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    huge_claim.extend_from_slice(&payload);
    assert_refused(&exchange(addr, &huge_claim, false).await, "malformed");

    // A call before the handshake.
    let mut early = Vec::new();
    let call = Call {
        id: CallId { session: 1, seq: 1 },
        acked_below: 1,
        key: "steady".into(),
        type_name: "AtomicLong".into(),
        action: Action::Invoke { method: "increment_and_get".into(), args: vec![] },
        history: 0,
    };
    encode_frame(&Request::Call(call), &mut early);
    assert_refused(&exchange(addr, &early, false).await, "before hello");

    // A wrong protocol version.
    let mut wrong_version = Vec::new();
    encode_frame(&Request::Hello { protocol_version: PROTOCOL_VERSION + 1, token: None }, &mut wrong_version);
    assert_refused(&exchange(addr, &wrong_version, false).await, "version");

    let acknowledged = workload.await.unwrap();
    assert_eq!(counter.get().await.unwrap(), acknowledged, "no update lost, none applied twice");
    let fresh = server.connect().await.unwrap();
    assert_eq!(fresh.atomic_long("steady").get().await.unwrap(), 500);
}

/// Frames pipelined after a refused handshake, in the same write, are never applied: a call
/// after a hello without the token, and member messages after a member hello with a wrong one.
#[tokio::test]
async fn nothing_sent_after_a_refused_token_is_applied() {
    use crucial_dso::core::auth::Token;
    use crucial_dso::core::protocol::PeerMessage;
    let token = Token::new("the-cluster-token-0123").unwrap();
    let server =
        ServerBuilder::new().bind(SocketAddr::from(([127, 0, 0, 1], 0))).token(token).start().await.unwrap();
    let addr = server.local_addr();
    let call = |seq| Call {
        id: CallId { session: 9, seq },
        acked_below: seq,
        key: "guarded".into(),
        type_name: "AtomicLong".into(),
        action: Action::Invoke { method: "increment_and_get".into(), args: vec![] },
        history: 0,
    };

    let mut bytes = hello();
    encode_frame(&Request::Call(call(1)), &mut bytes);
    encode_frame(&Request::Status, &mut bytes);
    let frames = exchange(addr, &bytes, false).await;
    assert!(
        matches!(frames.as_slice(), [Response::Unauthenticated { reason }] if reason.contains("none was given")),
        "{frames:?}"
    );

    let mut bytes = Vec::new();
    let wrong = Some(Token::new("not-the-cluster-token").unwrap());
    encode_frame(
        &Request::PeerHello { protocol_version: PROTOCOL_VERSION, from: 7, token: wrong },
        &mut bytes,
    );
    let ack = PeerMessage::Ack { epoch: 1, key: "guarded".into(), applied: 1 };
    encode_frame(&Request::Peer(ack), &mut bytes);
    encode_frame(&Request::Call(call(2)), &mut bytes);
    let frames = exchange(addr, &bytes, false).await;
    // A standalone server takes no member hello at all, whatever its token.
    assert!(
        matches!(frames.as_slice(), [Response::Refused { reason }] if reason.contains("no cluster member")),
        "{frames:?}"
    );

    let dso = server.connect().await.unwrap();
    assert_eq!(dso.atomic_long("guarded").get().await.unwrap(), 0, "no refused call was applied");
}
