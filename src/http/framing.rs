//! A pre-scan of each HTTP/1 request head for `Content-Length` together
//! with `Transfer-Encoding` (RFC 9112 section 6.1). hyper resolves that
//! conflict itself (chunked wins, Content-Length is dropped, the connection
//! closes), so the service never sees it; the gateway answers 400 (docs/routing.md), so the
//! socket wrapper (`conn.rs`) looks at the head bytes on their way in.
//!
//! On HTTP/2 the same wrapper follows the frames going out (`FrameScan`),
//! to tell response bytes the client accepted from control frames a silent
//! client can cause (PING and SETTINGS acknowledgements).

use std::collections::BTreeSet;

/// The longest header-name prefix we need to see: `transfer-encoding:`.
const NAME_PREFIX: usize = 18;

#[derive(Default)]
pub struct HeadScan {
    /// Scanning a head now.
    active: bool,
    /// An HTTP/2 connection: never scan again.
    disabled: bool,
    first_line: bool,
    /// The start of the current line, lower-cased.
    line: [u8; NAME_PREFIX],
    line_len: usize,
    /// The current line had more bytes than `line` holds.
    line_long: bool,
    content_length: bool,
    transfer_encoding: bool,
}

impl HeadScan {
    /// Did the connection start with the HTTP/2 preface?
    pub fn is_http2(&self) -> bool {
        self.disabled
    }

    /// A new request head starts with the next bytes.
    pub fn start(&mut self) {
        if !self.disabled {
            *self = HeadScan {
                active: true,
                first_line: true,
                ..HeadScan::default()
            };
        }
    }

    /// Feeds bytes read from the client; `Some(conflict)` once the head ended.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<bool> {
        if !self.active {
            return None;
        }
        for &b in bytes {
            if b != b'\n' {
                if self.line_len < NAME_PREFIX {
                    self.line[self.line_len] = b.to_ascii_lowercase();
                    self.line_len += 1;
                } else {
                    self.line_long = true;
                }
                continue;
            }
            let line = &self.line[..self.line_len];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.first_line {
                // The HTTP/2 preface starts `PRI * HTTP/2.0`: not ours to scan.
                if line.starts_with(b"pri * http/2") {
                    self.active = false;
                    self.disabled = true;
                    return None;
                }
                self.first_line = false;
            } else if line.is_empty() && !self.line_long {
                self.active = false;
                return Some(self.content_length && self.transfer_encoding);
            } else {
                self.content_length |= line.starts_with(b"content-length:");
                self.transfer_encoding |= line.starts_with(b"transfer-encoding:");
            }
            self.line_len = 0;
            self.line_long = false;
        }
        None
    }
}

// Frame types and flags (RFC 9113 sections 4.1 and 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;
/// Responses whose head went out but whose end did not, remembered at most;
/// past it the oldest streams are forgotten (a client that resets streams
/// mid-response leaves entries that no frame of ours removes).
const MAX_OPEN: usize = 1024;

/// Follows the HTTP/2 frames the gateway writes, split across writes anywhere.
#[derive(Default)]
pub struct FrameScan {
    head: [u8; 9],
    head_len: usize,
    payload_left: usize,
    /// The frame now being written is a DATA frame with a payload.
    in_data: bool,
    /// Streams whose response head went out without END_STREAM: a body follows.
    open: BTreeSet<u32>,
}

/// What a run of written bytes carried.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Response body bytes (DATA payload): the client's window let them out.
    pub data: bool,
    /// Responses with a body whose last frame (END_STREAM) went out.
    pub ends: usize,
}

impl FrameScan {
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Written) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                out.data |= self.in_data;
                self.payload_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
            self.head_len += n;
            bytes = &bytes[n..];
            if self.head_len == 9 {
                self.head_len = 0;
                self.frame_starts(out);
            }
        }
    }

    fn frame_starts(&mut self, out: &mut Written) {
        let h = &self.head;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        self.payload_left = len;
        self.in_data = kind == DATA && len > 0;
        out.data |= self.in_data;
        match (kind, flags & END_STREAM != 0) {
            // A bodiless response (HEADERS with END_STREAM, never opened)
            // owes nothing; trailers end a stream that is open.
            (HEADERS | DATA, true) => out.ends += usize::from(self.open.remove(&stream)),
            (HEADERS, false) => {
                self.open.insert(stream);
                if self.open.len() > MAX_OPEN {
                    self.open.pop_first();
                }
            }
            (RST_STREAM, _) => {
                self.open.remove(&stream);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Option<bool> {
        let mut s = HeadScan::default();
        s.start();
        chunks.iter().find_map(|c| s.feed(c))
    }

    #[test]
    fn finds_both_framing_headers_whatever_the_case_and_split() {
        let head: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(scan(&[head]), Some(true));
        // Split anywhere, even inside a name.
        for at in 1..head.len() {
            assert_eq!(
                scan(&[&head[..at], &head[at..]]),
                Some(true),
                "split at {at}"
            );
        }
    }

    #[test]
    fn one_framing_header_is_fine() {
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"]),
            Some(false)
        );
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            Some(false)
        );
        // A value mentioning the other name does not count.
        assert_eq!(scan(&[b"GET / HTTP/1.1\r\nX-Note: content-length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]), Some(false));
    }

    #[test]
    fn a_long_header_line_is_not_the_end_of_the_head() {
        let head = format!("GET / HTTP/1.1\r\nX-Long: {}\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "v".repeat(100));
        assert_eq!(scan(&[head.as_bytes()]), Some(true));
    }

    #[test]
    fn http2_prior_knowledge_is_left_alone() {
        let mut s = HeadScan::default();
        s.start();
        assert_eq!(s.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        s.start();
        assert_eq!(s.feed(b"\ncontent-length:1\ntransfer-encoding:x\n\n"), None);
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    #[test]
    fn frames_tell_response_bytes_and_ends_from_control_frames() {
        let settings_ack = frame(0x4, 0x1, 0, &[]);
        let pong = frame(0x6, 0x1, 0, &[0; 8]);
        let bodiless = frame(HEADERS, 0x4 | END_STREAM, 1, b"\x88");
        let head = frame(HEADERS, 0x4, 3, b"\x88");
        let data = frame(DATA, 0, 3, b"hello");
        let last = frame(DATA, END_STREAM, 3, b"");
        let mut s = FrameScan::default();
        let mut out = Written::default();
        for f in [&settings_ack, &pong, &bodiless, &head] {
            s.feed(f, &mut out);
        }
        assert_eq!(out, Written::default());
        let stream: Vec<u8> = [data, last].concat();
        // Split anywhere, even inside a frame header.
        for at in 0..stream.len() {
            let (mut s, mut out) = (FrameScan::default(), Written::default());
            s.feed(&head, &mut out);
            s.feed(&stream[..at], &mut out);
            s.feed(&stream[at..], &mut out);
            assert_eq!(
                out,
                Written {
                    data: true,
                    ends: 1
                },
                "split at {at}"
            );
        }
    }

    #[test]
    fn trailers_end_an_open_stream_and_a_reset_forgets_it() {
        let mut s = FrameScan::default();
        let mut out = Written::default();
        s.feed(&frame(HEADERS, 0x4, 5, b"\x88"), &mut out);
        s.feed(&frame(HEADERS, 0x4 | END_STREAM, 5, b"\x40"), &mut out);
        assert_eq!(out.ends, 1);
        s.feed(&frame(HEADERS, 0x4, 7, b"\x88"), &mut out);
        s.feed(&frame(RST_STREAM, 0, 7, &[0, 0, 0, 8]), &mut out);
        s.feed(&frame(DATA, END_STREAM, 7, b""), &mut out);
        assert_eq!(
            out,
            Written {
                data: false,
                ends: 1
            }
        );
    }
}
