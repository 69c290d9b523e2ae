//! The response body's framing taken off the bytes read from the upstream
//! (a length, chunked coding with its trailers, or up to the close). No
//! I/O here: `decode` works on whatever is buffered and says when it needs
//! more, so the fuzz target can feed it any split of any input.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use super::head::{header_map, Framing, MAX_HEADERS};

/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_SIZE_LINE: usize = 4 * 1024;
/// Trailer fields larger than this, all together, are refused.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the upstream closed the connection before the body's end")]
    Truncated,
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
    #[error("malformed trailer fields")]
    Trailers,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body is complete; bytes after it are not the body's.
    End,
    /// Nothing more until more bytes arrive.
    More,
}

#[derive(Debug)]
pub struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Length(u64),
    Close,
    /// A chunk-size line: the size so far, its digit count, whether the
    /// extensions (or whitespace before them) began, and the line's length.
    Size(Size),
    /// The size line's CR was read: the chunk's size.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    Trailers,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Size {
    value: u64,
    digits: u8,
    /// Whitespace after the digits (only more of it, `;` or CR may follow).
    ws: bool,
    /// Inside the extensions, which run to the CR.
    ext: bool,
    len: usize,
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Close => State::Close,
            Framing::Chunked => State::Size(Size::default()),
        };
        Decoder { state }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still to come when the length is known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next piece of the body off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Trailers => return self.trailers(buf),
                _ if buf.is_empty() => return Ok(Decoded::More),
                State::Close => return Ok(Decoded::Data(buf.split().freeze())),
                State::Length(n) | State::Data(n) => {
                    let take = n.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    self.state = match (self.state, n - take) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), left) => State::Length(left),
                        (_, 0) => State::DataCr,
                        (_, left) => State::Data(left),
                    };
                    return Ok(Decoded::Data(data));
                }
                _ => {
                    let b = buf[0];
                    buf.advance(1);
                    self.state = step(self.state, b)?;
                }
            }
        }
    }

    /// The upstream closed the connection: the end, if the framing says so.
    pub fn eof(&mut self) -> Result<Decoded, DecodeError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(Decoded::End)
            }
            _ => Err(DecodeError::Truncated),
        }
    }

    /// The trailer section, once whole: empty, or fields up to a blank line.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::Done;
            return Ok(Decoded::End);
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (used, fields) = match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(done)) if done.0 <= MAX_TRAILERS => done,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_TRAILERS => return Ok(Decoded::More),
            _ => return Err(DecodeError::Trailers),
        };
        let map = header_map(fields).map_err(|_| DecodeError::Trailers)?;
        buf.advance(used);
        self.state = State::Done;
        Ok(Decoded::Trailers(map))
    }
}

/// One byte of the chunked coding's framing (RFC 9112 section 7.1).
fn step(state: State, b: u8) -> Result<State, DecodeError> {
    let bad = |why| Err(DecodeError::Chunked(why));
    Ok(match state {
        State::Size(s) if s.len >= MAX_SIZE_LINE => return bad("chunk-size line too long"),
        State::Size(s) if !s.ws && !s.ext && b.is_ascii_hexdigit() => {
            if s.digits == 16 {
                return bad("chunk size overflows");
            }
            let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
            State::Size(Size {
                value: s.value << 4 | digit,
                digits: s.digits + 1,
                len: s.len + 1,
                ..s
            })
        }
        State::Size(s) if s.digits == 0 => return bad("no chunk size"),
        State::Size(s) if b == b'\r' => State::SizeLf(s.value),
        // Extensions are ignored; whitespace may precede them (RFC 9112's BWS).
        State::Size(s) if b == b';' || (s.ext && is_ext_byte(b)) => State::Size(Size {
            ext: true,
            len: s.len + 1,
            ..s
        }),
        State::Size(s) if b == b' ' || b == b'\t' => State::Size(Size {
            ws: true,
            len: s.len + 1,
            ..s
        }),
        State::Size(_) => return bad("invalid chunk-size line"),
        State::SizeLf(0) if b == b'\n' => State::Trailers,
        State::SizeLf(n) if b == b'\n' => State::Data(n),
        State::SizeLf(_) => return bad("chunk-size line without LF"),
        State::DataCr if b == b'\r' => State::DataLf,
        State::DataLf if b == b'\n' => State::Size(Size::default()),
        State::DataCr | State::DataLf => return bad("chunk data not followed by CRLF"),
        _ => return bad("unexpected framing byte"),
    })
}

/// Visible characters, spaces and tabs: what a chunk extension may hold.
fn is_ext_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `raw` fed in pieces of `step` bytes: the body, the trailers,
    /// and the bytes left after the end.
    fn run(
        framing: Framing,
        raw: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, HeaderMap, Vec<u8>), DecodeError> {
        let mut d = Decoder::new(framing);
        let (mut body, mut trailers, mut buf) = (Vec::new(), HeaderMap::new(), BytesMut::new());
        let mut rest = raw;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => body.extend_from_slice(&b),
                Decoded::Trailers(t) => trailers = t,
                Decoded::End => return Ok((body, trailers, [&buf[..], rest].concat())),
                Decoded::More if rest.is_empty() => {
                    d.eof()?;
                    return Ok((body, trailers, Vec::new()));
                }
                Decoded::More => {
                    let n = step.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
            }
        }
    }

    #[test]
    fn every_framing_decodes_the_same_whatever_the_split() {
        let chunked = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\nx-sum: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 1000] {
            let (body, trailers, rest) = run(Framing::Chunked, chunked, step).unwrap();
            assert_eq!(
                (&body[..], &rest[..]),
                (&b"hello world"[..], &b"NEXT"[..]),
                "step {step}"
            );
            assert_eq!(trailers["x-sum"], "1");
            let (body, _, rest) = run(Framing::Length(5), b"helloNEXT", step).unwrap();
            assert_eq!((&body[..], &rest[..]), (&b"hello"[..], &b"NEXT"[..]));
            let (body, _, _) = run(Framing::Close, b"all of it", step).unwrap();
            assert_eq!(body, b"all of it");
            let (body, trailers, rest) =
                run(Framing::Chunked, b"A \t;x\r\n0123456789\r\n0\r\n\r\n", step).unwrap();
            assert_eq!(
                (&body[..], trailers.len(), rest.len()),
                (&b"0123456789"[..], 0, 0)
            );
        }
    }

    #[test]
    fn malformed_or_cut_bodies_are_errors() {
        let bad: [&[u8]; 10] = [
            b"5\r\nhello0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"5\r\nhel",
            b"5 x 6\r\nhello\r\n0\r\n\r\n",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
            b"0\r\nbad field\r\n\r\n",
            b"0\r\nx: 1\r\n",
        ];
        for raw in bad {
            assert!(
                run(Framing::Chunked, raw, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            run(Framing::Length(9), b"short", 2),
            Err(DecodeError::Truncated)
        ));
        let long = [b"1;".as_slice(), &[b'x'; MAX_SIZE_LINE]].concat();
        assert!(run(Framing::Chunked, &long, 512).is_err());
    }
}
