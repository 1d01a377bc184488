//! The "already acknowledged" failure of issue 26, over real TCP: a call is answered, then a
//! late copy of it (a resend that was in flight when the first copy was answered) reaches a
//! member after the client's next call acknowledged it, and that member answers it
//! `StaleCall`. The async client took that answer to a call it no longer waited for as a
//! refusal of its whole session, and failed every later call with "call N of session S was
//! already acknowledged by its client". A scripted member plays that sequence here; the
//! client's later calls must succeed.

#![cfg(not(madsim))]

use crucial_dso::core::codec::{decode_frame, encode_frame, FRAME_BYTES_MAX_DEFAULT};
use crucial_dso::core::object::encode;
use crucial_dso::core::protocol::{Request, Response, PROTOCOL_VERSION};
use crucial_dso::{CallError, Dso};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads the next request frame.
async fn next_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Request {
    loop {
        if let Some((request, used)) = decode_frame::<Request>(buffer, FRAME_BYTES_MAX_DEFAULT).unwrap() {
            buffer.drain(..used);
            return request;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "the client closed the connection");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

async fn send(stream: &mut TcpStream, response: &Response) {
    let mut bytes = Vec::new();
    encode_frame(response, &mut bytes);
    stream.write_all(&bytes).await.unwrap();
}

/// A member that answers every call with `value`, and after the first answer sends a late
/// duplicate of it refused as already acknowledged.
async fn scripted_member(listener: TcpListener, value: i64) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buffer = Vec::new();
    let Request::Hello { .. } = next_request(&mut stream, &mut buffer).await else { panic!("no hello") };
    send(&mut stream, &Response::Welcome { protocol_version: PROTOCOL_VERSION, frame_bytes_max: 1 << 20 })
        .await;
    let mut answered = 0;
    loop {
        let Request::Call(call) = next_request(&mut stream, &mut buffer).await else { continue };
        send(&mut stream, &Response::Reply { id: call.id, result: Ok(encode(&value)) }).await;
        answered += 1;
        if answered == 1 {
            let stale = CallError::StaleCall { session: call.id.session, seq: call.id.seq };
            send(&mut stream, &Response::Reply { id: call.id, result: Err(stale) }).await;
        }
    }
}

#[tokio::test]
async fn a_late_duplicate_refused_as_acknowledged_does_not_refuse_the_session() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(scripted_member(listener, 7));
    let dso = Dso::connect(addr.to_string()).await.unwrap();
    let counter = dso.atomic_long("k");
    assert_eq!(counter.get().await.unwrap(), 7);
    for _ in 0..3 {
        // The late duplicate arrives meanwhile; the session goes on.
        assert_eq!(counter.get().await.unwrap(), 7, "a later call failed after a late duplicate");
    }
}
