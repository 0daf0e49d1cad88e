//! Length-prefixed frames: a `u32` big-endian length, then that many bytes.
//!
//! Every stream in ALP (the handshake, each request and each response)
//! carries frames in this one format. Each context has its own maximum;
//! a length over it is refused before a single payload byte is read.

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// A frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced length is over the limit for this context.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The input ended inside a frame.
    #[error("truncated frame")]
    Truncated,
}

/// Parses a header and checks the announced length against `max`.
pub fn payload_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(FrameError::TooLarge { len: u64::from(len), max }),
    }
}

/// Appends `payload` as one frame to `out`.
///
/// Payloads must be shorter than 4 GiB; every caller's limit is far below.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Splits one frame off the front of `input`: the payload and the rest.
pub fn split(input: &[u8], max: usize) -> Result<(&[u8], &[u8]), FrameError> {
    let (header, rest) = input.split_first_chunk::<HEADER_LEN>().ok_or(FrameError::Truncated)?;
    let len = payload_len(*header, max)?;
    if rest.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn snapshot() {
        let mut out = Vec::new();
        encode(b"hi", &mut out);
        assert_eq!(out, [0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn limits_are_checked_before_reading() {
        assert_eq!(payload_len([0, 0, 1, 0], 255), Err(FrameError::TooLarge { len: 256, max: 255 }));
        assert_eq!(
            payload_len([0xff; 4], 1 << 20).unwrap_err(),
            FrameError::TooLarge { len: u64::from(u32::MAX), max: 1 << 20 }
        );
        assert_eq!(split(&[0, 0, 0, 5, 1, 2], 10), Err(FrameError::Truncated));
        assert_eq!(split(&[0, 0], 10), Err(FrameError::Truncated));
    }

    proptest! {
        #[test]
        fn round_trips(payload in proptest::collection::vec(any::<u8>(), 0..300), tail in proptest::collection::vec(any::<u8>(), 0..10)) {
            let mut out = Vec::new();
            encode(&payload, &mut out);
            prop_assert_eq!(out.len(), HEADER_LEN + payload.len());
            out.extend_from_slice(&tail);
            let (p, rest) = split(&out, 300).unwrap();
            prop_assert_eq!(p, &payload[..]);
            prop_assert_eq!(rest, &tail[..]);
        }

        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..100) {
            let _ = split(&input, max);
        }
    }
}
