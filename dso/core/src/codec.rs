//! The frame codec: a 4-byte big-endian length, then a bincode payload. Pure and bounded: the
//! length is checked against the maximum before any payload is buffered.

use serde::{de::DeserializeOwned, Serialize};

use crate::object::bincode_config;

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// The default largest frame: 4 MiB.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 4 << 20;

/// Why bytes are not a frame. Either way the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces more than the limit.
    #[error("frame of {length} bytes is over the limit of {limit}")]
    TooLarge {
        /// The announced length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Bytes reserved before encoding a frame: most calls and answers fit.
const SMALL_FRAME_BYTES: usize = 128;

/// Appends `message` as one frame to `out`.
pub fn encode_frame<T: Serialize>(message: &T, out: &mut Vec<u8>) {
    // Room for a small message at once, rather than growing through every power of two.
    out.reserve(SMALL_FRAME_BYTES);
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    bincode::serde::encode_into_std_write(message, out, bincode_config())
        .expect("encoding an in-memory value into a Vec cannot fail");
    let length = (out.len() - start - LENGTH_BYTES) as u32;
    out[start..start + LENGTH_BYTES].copy_from_slice(&length.to_be_bytes());
}

/// Decodes the first frame in `bytes`: `Ok(None)` if more bytes are needed, else the message
/// and the bytes it used.
pub fn decode_frame<T: DeserializeOwned>(
    bytes: &[u8],
    frame_bytes_max: usize,
) -> Result<Option<(T, usize)>, DecodeError> {
    let Some(prefix) = bytes.get(..LENGTH_BYTES) else { return Ok(None) };
    let length = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if length > frame_bytes_max {
        return Err(DecodeError::TooLarge { length, limit: frame_bytes_max });
    }
    let Some(payload) = bytes.get(LENGTH_BYTES..LENGTH_BYTES + length) else { return Ok(None) };
    let message = crate::object::decode(payload).map_err(DecodeError::Malformed)?;
    Ok(Some((message, LENGTH_BYTES + length)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Action, Call};
    use crate::object::CallId;
    use crate::protocol::{CallRequest, Request, PROTOCOL_VERSION};

    #[test]
    fn round_trip_and_partial_frames() {
        let mut bytes = Vec::new();
        encode_frame(&Request::Hello { protocol_version: PROTOCOL_VERSION, token: None }, &mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(decode_frame::<Request>(&bytes[..cut], 1024), Ok(None), "cut at {cut}");
        }
        let (message, used) = decode_frame::<Request>(&bytes, 1024).unwrap().unwrap();
        assert_eq!(message, Request::Hello { protocol_version: PROTOCOL_VERSION, token: None });
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn a_call_request_encodes_as_the_call_variant() {
        let call = Call {
            id: CallId { session: 7, seq: 3 },
            acked_below: 2,
            key: "key".into(),
            type_name: "AtomicLong".into(),
            action: Action::Invoke { method: "add_and_get".into(), args: vec![1, 2] },
            history: 9,
        };
        let (mut borrowed, mut owned) = (Vec::new(), Vec::new());
        encode_frame(&CallRequest(&call), &mut borrowed);
        encode_frame(&Request::Call(call), &mut owned);
        assert_eq!(borrowed, owned);
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload_arrives() {
        let prefix = 5000u32.to_be_bytes();
        assert_eq!(
            decode_frame::<Request>(&prefix, 4096),
            Err(DecodeError::TooLarge { length: 5000, limit: 4096 })
        );
    }

    #[test]
    fn garbage_payload_is_malformed() {
        let mut bytes = 3u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(decode_frame::<Request>(&bytes, 4096), Err(DecodeError::Malformed(_))));
    }
}
