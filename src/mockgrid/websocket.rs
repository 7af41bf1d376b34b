//! The little of WebSocket (RFC 6455) the simulated grid and the scripted viewer speak: the
//! handshake's accept key, and single frames written and read whole.
//!
//! Shared by `server.rs` (the grid's echo endpoint) and `client.rs` (the viewer's web page). Owns the
//! wire form only; it must not know what either side does with a message.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame either side reads.
pub(super) const MAX_FRAME: u64 = 1024 * 1024;

/// The GUID RFC 6455 appends to the client's key before hashing it into `Sec-WebSocket-Accept`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine as _;
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// One frame: `first` is its first byte (FIN and opcode), the payload masked with `mask` when given
/// (a client must mask, a server must not: RFC 6455 §5.3).
pub(super) fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= 0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Reads one frame whole: its first byte (FIN and opcode) and its payload, unmasked if it was masked.
pub(super) async fn read_frame<I: AsyncRead + Unpin>(io: &mut I) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    io.read_exact(&mut h).await?;
    let len = match h[1] & 0x7f {
        126 => u64::from(io.read_u16().await?),
        127 => io.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(std::io::Error::other("WebSocket frame too large"));
    }
    let mut mask = [0u8; 4];
    if h[1] & 0x80 != 0 {
        io.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok((h[0], payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_read_back_as_written_masked_or_not_at_every_length_form() {
        for len in [0, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = frame(0x82, &payload, mask);
                let (first, back) = read_frame(&mut &bytes[..]).await.unwrap();
                assert_eq!((first, &back), (0x82, &payload), "len {len} mask {mask:?}");
            }
        }
    }
}
