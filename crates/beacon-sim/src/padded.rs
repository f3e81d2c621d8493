//! Oversized answers (`oversize_bytes`): a success body whose answer text is padded with
//! filler, streamed chunk by chunk so a 200 MB answer costs the simulator a few kilobytes
//! of memory, with the text's SHA-256 computed while the filler goes out.
//!
//! The body is the ordinary success JSON rendered once with a marker after the answer
//! text; the marker splits it into pieces, and the filler is streamed in place of each
//! marker (Modal's answer holds the text twice: `response` and the receipt's copy).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::reply::{CALL_ID_HEADER, JSON, Served, json_bytes};

/// Appended to the answer text before rendering; its JSON-escaped form is where filler
/// goes. Control characters make it impossible to confuse with generated text.
pub(crate) const PAD_MARKER: &str = "\u{1}beacon-sim:pad\u{1}";

/// One filler unit: a word, so token estimates and readers see ordinary text.
const FILLER_UNIT: &[u8; 8] = b" padding";
/// Bytes per streamed filler chunk (a whole number of units, so chunks join seamlessly).
const FILLER_CHUNK: usize = 64 * 1024;

/// The shared filler chunk; every streamed chunk is a zero-copy slice of it.
static FILLER: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(FILLER_UNIT.repeat(FILLER_CHUNK / FILLER_UNIT.len())));

/// The tokens `pad` bytes of filler add (one per started word).
pub(crate) fn filler_tokens(pad: u64) -> u32 {
    let unit = FILLER_UNIT.len() as u64;
    let words = pad / unit + u64::from(pad % unit >= 2);
    u32::try_from(words).unwrap_or(u32::MAX)
}

/// The answer text as rendered into JSON: with the marker when it is to be padded.
pub(crate) fn answer_field(s: &Served<'_>) -> String {
    if s.pad > 0 {
        format!("{}{PAD_MARKER}", s.text)
    } else {
        s.text.to_string()
    }
}

/// A success body with `pad` filler bytes after each copy of the answer text.
#[derive(Debug)]
pub(crate) struct Padded {
    status: StatusCode,
    /// The rendered JSON, cut where the marker was.
    pieces: Vec<Bytes>,
    pad: u64,
    /// SHA-256 state after the unpadded answer text; the filler completes it.
    text_hash: Sha256,
    /// Length of the padded answer text.
    text_bytes: u64,
}

impl Padded {
    /// Renders `value` (whose answer fields hold `text + PAD_MARKER`) and cuts it at the
    /// markers. `None` if no marker made it into the JSON (nothing to pad).
    pub fn new(status: StatusCode, value: &Value, text: &str, pad: u64) -> Option<Padded> {
        let json = json_bytes(value);
        let escaped = json_bytes(&PAD_MARKER);
        // The escaped marker without its surrounding quotes.
        let marker = escaped.get(1..escaped.len().saturating_sub(1))?;
        let mut pieces = Vec::new();
        let mut rest = 0;
        let mut i = 0;
        while let Some(at) = find(&json[i..], marker) {
            pieces.push(json.slice(rest..i + at));
            i += at + marker.len();
            rest = i;
        }
        if pieces.is_empty() {
            return None;
        }
        pieces.push(json.slice(rest..));
        Some(Padded {
            status,
            pieces,
            pad,
            text_hash: Sha256::new_with_prefix(text.as_bytes()),
            text_bytes: text.len() as u64 + pad,
        })
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Length of the padded answer text in bytes.
    pub fn text_bytes(&self) -> u64 {
        self.text_bytes
    }

    fn body_len(&self) -> u64 {
        let json: u64 = self.pieces.iter().map(|p| p.len() as u64).sum();
        json + self.pad * (self.pieces.len() as u64 - 1)
    }

    /// A streamed response. With a `record` (engine, call id), the call's record learns
    /// the text's hash once the filler has gone out, and whether the client hung up
    /// before the end.
    pub fn response(self: &Arc<Self>, record: Option<(Arc<Engine>, u64)>) -> Response {
        let call_id = record.as_ref().map(|(_, id)| *id);
        let body = PaddedBody {
            left: self.body_len(),
            padded: self.clone(),
            next_piece: 0,
            pad_left: 0,
            hasher: Some(self.text_hash.clone()),
            finished: false,
            record,
        };
        let mut response =
            (self.status, [(header::CONTENT_TYPE, JSON)], Body::new(body)).into_response();
        if let Some(id) = call_id {
            response
                .headers_mut()
                .insert(CALL_ID_HEADER, HeaderValue::from(id));
        }
        response
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The streaming body of one delivery of a [`Padded`] answer.
struct PaddedBody {
    padded: Arc<Padded>,
    next_piece: usize,
    pad_left: u64,
    /// Hashing the first filler run; `None` once the hash was reported.
    hasher: Option<Sha256>,
    /// The last byte was handed to hyper.
    finished: bool,
    /// Bytes not yet handed out (an exact size hint gives the answer a Content-Length,
    /// as a real provider's JSON answer has).
    left: u64,
    record: Option<(Arc<Engine>, u64)>,
}

impl PaddedBody {
    fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.pad_left > 0 {
                let n = self.pad_left.min(FILLER.len() as u64);
                self.pad_left -= n;
                let chunk = FILLER.slice(..n as usize);
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&chunk);
                    if self.pad_left == 0 {
                        let digest: [u8; 32] = h.clone().finalize().into();
                        self.hasher = None;
                        if let Some((engine, id)) = &self.record {
                            engine.note_streamed_text(*id, digest);
                        }
                    }
                }
                return Some(chunk);
            }
            let piece = self.padded.pieces.get(self.next_piece)?.clone();
            self.next_piece += 1;
            if self.next_piece < self.padded.pieces.len() {
                self.pad_left = self.padded.pad;
            } else {
                // Marked before the last bytes are written, so a client that has read
                // the whole body always finds the record complete.
                self.finished = true;
            }
            if !piece.is_empty() {
                return Some(piece);
            }
        }
    }
}

impl hyper::body::Body for PaddedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let chunk = this.next_chunk();
        if let Some(c) = &chunk {
            this.left = this.left.saturating_sub(c.len() as u64);
        }
        Poll::Ready(chunk.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

impl Drop for PaddedBody {
    fn drop(&mut self) {
        if let Some((engine, id)) = &self.record {
            if !self.finished {
                engine.note_hung_up(*id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filler_joins_seamlessly_and_counts_words() {
        assert_eq!(FILLER.len(), FILLER_CHUNK);
        assert!(FILLER.starts_with(FILLER_UNIT) && FILLER.ends_with(FILLER_UNIT));
        assert_eq!(filler_tokens(16), 2);
        assert_eq!(filler_tokens(17), 2, "a lone space is no word");
        assert_eq!(filler_tokens(18), 3);
    }

    #[test]
    fn the_marker_splits_the_body_once_per_copy_of_the_text() {
        let text = format!("hi\u{0}there{PAD_MARKER}");
        let v = json!({"a": text, "b": {"c": text}, "n": 1});
        let p = Padded::new(StatusCode::OK, &v, "hi\u{0}there", 10).unwrap();
        assert_eq!(p.pieces.len(), 3);
        assert_eq!(p.text_bytes(), 8 + 10);
        let plain = json_bytes(&json!({"a": "hi\u{0}there", "b": {"c": "hi\u{0}there"}, "n": 1}));
        assert_eq!(p.body_len(), plain.len() as u64 + 20);
        assert!(Padded::new(StatusCode::OK, &json!({"a": "x"}), "x", 10).is_none());
    }
}
