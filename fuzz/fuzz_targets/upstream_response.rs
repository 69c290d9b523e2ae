//! The upstream HTTP/1.1 response parser: the head (httparse plus the
//! framing rules of RFC 9112 section 6.3) and the body decoder (length,
//! chunked with trailers, close-delimited). Any input either is refused or
//! parses, never panics, and gives the same answer however its bytes are
//! split across reads: a prefix of a complete head is never complete or an
//! error, and the body decodes to the same bytes, trailers and verdict fed
//! one piece at a time as fed whole. A length-delimited body is never
//! longer than its `Content-Length`, and exactly as long when it ends.
//!
//! Input: the first byte picks the request method (HEAD or GET) and the
//! size of the pieces the body is fed in; the rest is what the upstream sent.
#![no_main]

use bytes::BytesMut;
use gateway::proxy::upstream::h1::decode::{Decoded, Decoder};
use gateway::proxy::upstream::h1::head::{parse_response, Framing};
use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;

/// The body's bytes, its trailers, whether it ended (else it was cut by
/// the close), and the bytes after its end; `Err` if it is malformed.
type Outcome = Result<(Vec<u8>, Option<HeaderMap>, bool, Vec<u8>), ()>;

fn decode(framing: Framing, raw: &[u8], piece: usize) -> Outcome {
    let mut d = Decoder::new(framing);
    let (mut body, mut trailers, mut buf, mut rest) = (Vec::new(), None, BytesMut::new(), raw);
    loop {
        match d.decode(&mut buf).map_err(|_| ())? {
            Decoded::Data(b) => body.extend_from_slice(&b),
            Decoded::Trailers(t) => trailers = Some(t),
            Decoded::End => return Ok((body, trailers, true, [&buf[..], rest].concat())),
            Decoded::More if rest.is_empty() => {
                d.eof().map_err(|_| ())?;
                return Ok((body, trailers, false, Vec::new()));
            }
            Decoded::More => {
                let n = piece.min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let method = match first & 1 {
        0 => Method::GET,
        _ => Method::HEAD,
    };
    let piece = usize::from(first >> 1) + 1;
    let Ok(Some((head, used))) = parse_response(input, &method) else {
        return;
    };
    assert!(used <= input.len());
    for k in [0, used / 3, used / 2, used.saturating_sub(1)] {
        if k < used {
            let prefix = parse_response(&input[..k], &method);
            assert!(matches!(prefix, Ok(None)), "a {k}-byte prefix of a {used}-byte head: {prefix:?}");
        }
    }
    if method == Method::HEAD {
        assert_eq!(head.framing, Framing::Empty);
    }
    let body = &input[used..];
    let whole = decode(head.framing, body, usize::MAX);
    let split = decode(head.framing, body, piece);
    assert_eq!(whole, split, "piece size {piece}");
    if let (Framing::Length(n), Ok((bytes, _, ended, _))) = (head.framing, &whole) {
        assert!(bytes.len() as u64 <= n);
        assert_eq!(*ended, bytes.len() as u64 == n);
    }
});
