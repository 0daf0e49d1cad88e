//! Frames over streams, and the codes used to close connections and reset
//! streams. Every read is bounded by a size limit; callers bound it in
//! time.

use alp_protocol::frame::{self, FrameError};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    /// The node is busy: too many connections being set up, or this peer
    /// has as many connections as it may. Try again later.
    pub const BUSY: VarInt = VarInt::from_u32(9);
    /// The peer kept sending malformed requests.
    pub const MISBEHAVING: VarInt = VarInt::from_u32(10);
}

/// Stream reset codes.
pub mod reset_code {
    use quinn::VarInt;
    /// A frame was over its limit.
    pub const TOO_LARGE: VarInt = VarInt::from_u32(1);
    /// A frame did not decode.
    pub const MALFORMED: VarInt = VarInt::from_u32(2);
    /// The request did not arrive in time.
    pub const TIMEOUT: VarInt = VarInt::from_u32(3);
    /// The node cannot take the request now (its budget of requests or
    /// bytes in flight is used up): try again later.
    pub const BUSY: VarInt = VarInt::from_u32(4);
    /// The sender found its copy of a blob damaged and stopped sending it.
    pub const DAMAGED: VarInt = VarInt::from_u32(5);
}

/// A frame could not be moved over a stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame over its limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection is gone.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The stream ended where a frame should be.
    #[error("stream ended early")]
    Finished,
    /// The peer reset the stream.
    #[error("stream reset by peer (code {0})")]
    Reset(VarInt),
    /// Any other stream failure.
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

/// The receiving half of a stream, read as frames. Transfers and request
/// handling are written against this and [`FrameWrite`], so they run over
/// quinn streams in a node and over in-memory pipes in tests.
pub trait FrameRead: Send {
    /// Reads one frame of at most `max` bytes. A stream that ends before
    /// a frame starts is [`WireError::Finished`].
    fn read_frame(&mut self, max: usize) -> impl Future<Output = Result<Vec<u8>, WireError>> + Send;
}

/// The sending half of a stream, written as frames.
pub trait FrameWrite: Send {
    /// Writes one frame; the stream may keep `payload` without copying it.
    fn write_frame(&mut self, payload: Vec<u8>) -> impl Future<Output = Result<(), WireError>> + Send;
}

impl FrameRead for RecvStream {
    async fn read_frame(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        let len = read_header(self, max).await?;
        read_payload(self, len).await
    }
}

/// Reads a frame header and checks the announced length against `max`.
pub(crate) async fn read_header(recv: &mut RecvStream, max: usize) -> Result<usize, WireError> {
    let mut header = [0u8; frame::HEADER_LEN];
    recv.read_exact(&mut header).await?;
    Ok(frame::payload_len(header, max)?)
}

/// The first allocation for a payload; it grows as bytes arrive, so an
/// announced length costs nothing until the bytes are there.
const FIRST_ALLOCATION: usize = 64 << 10;

/// Reads a payload of `len` bytes.
pub(crate) async fn read_payload(recv: &mut RecvStream, len: usize) -> Result<Vec<u8>, WireError> {
    let mut payload = Vec::with_capacity(len.min(FIRST_ALLOCATION));
    while payload.len() < len {
        match recv.read_chunk(len - payload.len(), true).await? {
            Some(chunk) => payload.extend_from_slice(&chunk.bytes),
            None => return Err(WireError::Finished),
        }
    }
    Ok(payload)
}

impl FrameWrite for SendStream {
    async fn write_frame(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        let too_large = || FrameError::TooLarge { len: payload.len() as u64, max: u32::MAX as usize };
        let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
        let header = bytes::Bytes::copy_from_slice(&len.to_be_bytes());
        self.write_all_chunks(&mut [header, bytes::Bytes::from(payload)]).await?;
        Ok(())
    }
}

/// Frames over any byte stream: an in-memory pipe
/// ([`tokio::io::duplex`]) in tests, for one.
#[derive(Debug)]
pub struct Framed<T>(pub T);

impl<T: AsyncRead + Unpin + Send> FrameRead for Framed<T> {
    async fn read_frame(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        let mut header = [0u8; frame::HEADER_LEN];
        self.0.read_exact(&mut header).await.map_err(io_error)?;
        let len = frame::payload_len(header, max)?;
        let mut payload = Vec::with_capacity(len.min(FIRST_ALLOCATION));
        (&mut self.0).take(len as u64).read_to_end(&mut payload).await.map_err(io_error)?;
        if payload.len() < len {
            return Err(WireError::Finished);
        }
        Ok(payload)
    }
}

impl<T: AsyncWrite + Unpin + Send> FrameWrite for Framed<T> {
    async fn write_frame(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
        frame::encode(&payload, &mut buf);
        self.0.write_all(&buf).await.map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> WireError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => WireError::Finished,
        _ => WireError::Stream(e.to_string()),
    }
}

/// Abandons a stream in both directions with `code`.
pub(crate) fn reset(send: &mut SendStream, recv: &mut RecvStream, code: VarInt) {
    let _ = send.reset(code);
    let _ = recv.stop(code);
}
