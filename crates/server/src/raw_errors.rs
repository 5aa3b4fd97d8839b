//! JSON bodies and security headers for the errors hyper answers by itself.
//!
//! hyper answers a request it cannot parse — a malformed request line or header (400), a
//! target longer than it reads (414), headers larger or more numerous than it reads (431) —
//! without ever calling the service, so the response policy of `http` never sees it. This
//! module owns a wrapper around each connection ([`JsonErrors`]) that recognizes such an
//! automatic response as hyper writes it (one of those statuses, and no `x-request-id`, which
//! every response of ours carries) and writes in its place the same status with the JSON body
//! `{"error", "response"}`, the security headers and `connection: close`. It must not touch
//! anything else: every other byte passes through unchanged, and reads are not looked at.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use voxguard_guard::{Reason, Refusal};

/// A connection whose automatic hyper error responses are rewritten (see the module docs).
pub(crate) struct JsonErrors<S> {
    inner: S,
    /// A replacement response still to be written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
    tls: bool,
}

impl<S> JsonErrors<S> {
    /// Wrap `inner`; `tls` adds `Strict-Transport-Security` like every other response.
    pub(crate) fn new(inner: S, tls: bool) -> Self {
        Self {
            inner,
            pending: None,
            tls,
        }
    }
}

/// The reason and sentence for a status hyper answers by itself, if it is one of them.
fn automatic(status: &[u8]) -> Option<(Reason, &'static str)> {
    match status {
        b"400" => Some((Reason::BadRequest, "The request could not be understood.")),
        b"414" => Some((
            Reason::UriTooLong,
            "The request address is longer than this server accepts.",
        )),
        b"431" => Some((
            Reason::HeadersTooLarge,
            "The request headers are larger than this server accepts.",
        )),
        _ => None,
    }
}

/// The replacement for `head` when it is one of hyper's automatic error responses.
fn replacement(head: &[u8], tls: bool) -> Option<Vec<u8>> {
    let rest = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let (reason, sentence) = automatic(rest.get(..3)?)?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let ours = head[..end]
        .split(|&b| b == b'\n')
        .any(|line| line.to_ascii_lowercase().starts_with(b"x-request-id:"));
    if ours {
        return None;
    }
    let body = Refusal::new(reason, sentence).body().to_string();
    let status = reason.status();
    let text = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {status} {text}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in crate::http::SECURITY_HEADERS {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if tls {
        out.push_str(&format!(
            "strict-transport-security: {}\r\n",
            crate::http::HSTS
        ));
    }
    out.push_str(&format!(
        "x-request-id: {}\r\n\r\n{body}",
        crate::service::new_request_id()
    ));
    Some(out.into_bytes())
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    /// Write out a pending replacement; `Ready(Ok)` once nothing is pending.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written >= bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        if let Some(bytes) = replacement(buf, this.tls) {
            // hyper's own bytes are taken as written; ours go out in their place.
            this.pending = Some((bytes, 0));
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_are_replaced_and_ours_are_not() {
        for (head, reason) in [
            (
                &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"[..],
                "bad_request",
            ),
            (
                b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n",
                "uri_too_long",
            ),
            (
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n",
                "headers_too_large",
            ),
        ] {
            let out = replacement(head, true).expect("replaced");
            let text = String::from_utf8(out).expect("utf-8");
            let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
            let json: serde_json::Value = serde_json::from_str(body).expect("json body");
            assert_eq!(json["error"], reason);
            assert!(head.contains(&format!("content-length: {}", body.len())));
            for needle in [
                "x-content-type-options: nosniff",
                "strict-transport-security:",
                "x-request-id:",
                "connection: close",
            ] {
                assert!(head.contains(needle), "{needle} in {head}");
            }
        }
        // Our own 400s (they carry a request id), other statuses, partial heads: untouched.
        assert!(replacement(
            b"HTTP/1.1 400 Bad Request\r\nx-request-id: abc\r\n\r\n{}",
            false
        )
        .is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false).is_none());
        assert!(replacement(b"HTTP/1.1 400 Bad Req", false).is_none());
        assert!(replacement(b"{\"error\":\"x\"}", false).is_none());
    }
}
