//! Bounded reading of HTTP bodies from peers that may be hostile or broken (a provider
//! for the router, the router for the runner). A body is read chunk by chunk into a
//! buffer that refuses to grow past the limit (and is refused at once when its
//! `Content-Length` already says it is larger); an error body is only read for its
//! first few kilobytes. Either way a service never holds more than the limit of what a
//! peer sends, whatever it sends.

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than `limit`; `declared` is the `Content-Length` when that told us.
    TooLarge { limit: u64, declared: Option<u64> },
    /// The exchange broke (or timed out) while reading.
    Transport(reqwest::Error),
}

/// Reads the whole body if it is at most `limit` bytes.
pub async fn read_bounded(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let declared = resp.content_length();
    if let Some(len) = declared.filter(|len| *len > limit) {
        // Dropping the response closes the connection: not one byte more is read.
        return Err(BodyError::TooLarge {
            limit,
            declared: Some(len),
        });
    }
    // A declared length (already checked) sizes the buffer once; otherwise start small
    // and let it grow, so a lying or absent Content-Length cannot reserve memory.
    let initial = declared.unwrap_or(16 * 1024).min(limit);
    let mut buf: Vec<u8> = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        let needed = buf.len() + chunk.len();
        if needed as u64 > limit {
            return Err(BodyError::TooLarge {
                limit,
                declared: None,
            });
        }
        if needed > buf.capacity() {
            // Doubling as usual, but never past the limit: otherwise a body just under
            // it would hold twice the limit in capacity, and many calls in flight
            // multiply that.
            let target = (buf.capacity() * 2).max(needed).min(cap);
            buf.reserve_exact(target - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads at most `cap` bytes of a body and drops the rest unread. A transport error
/// just ends the read: an error body is a best-effort detail of a failure already known.
pub async fn read_prefix(mut resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buf
}
