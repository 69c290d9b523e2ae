//! A pre-scan of each HTTP/1 request head for `Content-Length` together
//! with `Transfer-Encoding` (RFC 9112 section 6.1). hyper resolves that
//! conflict itself (chunked wins, Content-Length is dropped, the connection
//! closes), so the service never sees it; SPEC section 8 wants a 400, so the
//! socket wrapper (`conn.rs`) looks at the head bytes on their way in.

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
}
