//! Frames over quinn streams, and the codes used to close connections and
//! reset streams. Every read is bounded by a size limit; callers bound it
//! in time.

use alp_protocol::frame::{self, FrameError};
use quinn::{RecvStream, SendStream, VarInt};

/// Application error codes for closing a connection (documented in
/// `docs/PROTOCOL.md`).
pub mod close_code {
    use quinn::VarInt;
    /// Normal close.
    pub const DONE: VarInt = VarInt::from_u32(0);
    /// The peer broke the protocol.
    pub const PROTOCOL: VarInt = VarInt::from_u32(1);
    /// The handshake failed (cryptography, signature, format).
    pub const HANDSHAKE_FAILED: VarInt = VarInt::from_u32(2);
    /// The peer is not trusted by this node.
    pub const NOT_TRUSTED: VarInt = VarInt::from_u32(3);
    /// The pairing ticket is unknown, expired or used.
    pub const TICKET_REFUSED: VarInt = VarInt::from_u32(4);
    /// Too many failed attempts from this address.
    pub const RATE_LIMITED: VarInt = VarInt::from_u32(5);
    /// The handshake did not finish in time.
    pub const HANDSHAKE_TIMEOUT: VarInt = VarInt::from_u32(6);
    /// The node is shutting down.
    pub const SHUTTING_DOWN: VarInt = VarInt::from_u32(7);
    /// The dialer reached a node other than the one it meant to.
    pub const UNEXPECTED_PEER: VarInt = VarInt::from_u32(8);
}

/// Stream reset codes.
pub(crate) mod reset_code {
    use quinn::VarInt;
    /// A frame was over its limit.
    pub(crate) const TOO_LARGE: VarInt = VarInt::from_u32(1);
    /// A frame did not decode.
    pub(crate) const MALFORMED: VarInt = VarInt::from_u32(2);
    /// The request did not arrive in time.
    pub(crate) const TIMEOUT: VarInt = VarInt::from_u32(3);
}

/// A frame could not be moved over a stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("stream ended early")]
    Finished,
    #[error("stream reset by peer (code {0})")]
    Reset(VarInt),
    #[error("stream error: {0}")]
    Stream(String),
}

impl From<quinn::ReadExactError> for WireError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => WireError::Finished,
            quinn::ReadExactError::ReadError(e) => e.into(),
        }
    }
}

impl From<quinn::ReadError> for WireError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => WireError::Connection(c),
            quinn::ReadError::Reset(code) => WireError::Reset(code),
            other => WireError::Stream(other.to_string()),
        }
    }
}

impl From<quinn::WriteError> for WireError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => WireError::Connection(c),
            other => WireError::Stream(other.to_string()),
        }
    }
}

/// Reads one frame of at most `max` bytes.
pub(crate) async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, WireError> {
    let mut header = [0u8; frame::HEADER_LEN];
    recv.read_exact(&mut header).await?;
    let len = frame::payload_len(header, max)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Writes one frame.
pub(crate) async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), WireError> {
    let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
    frame::encode(payload, &mut buf);
    send.write_all(&buf).await?;
    Ok(())
}

/// Writes one frame whose payload the stream may keep (no copy).
pub(crate) async fn write_frame_owned(send: &mut SendStream, payload: Vec<u8>) -> Result<(), WireError> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let header = bytes::Bytes::copy_from_slice(&len.to_be_bytes());
    send.write_all_chunks(&mut [header, bytes::Bytes::from(payload)]).await?;
    Ok(())
}

/// Abandons a stream in both directions with `code`.
pub(crate) fn reset(send: &mut SendStream, recv: &mut RecvStream, code: VarInt) {
    let _ = send.reset(code);
    let _ = recv.stop(code);
}
