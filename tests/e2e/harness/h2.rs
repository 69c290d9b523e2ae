//! HTTP/2 written and read by hand (RFC 9113 section 4, HPACK from RFC
//! 7541), for clients no library would let us be: windows held at zero,
//! floods of frames, resets at chosen moments. h2c prior knowledge only.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 section 6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

// Settings (RFC 9113 section 6.5.2).
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

// Error codes (RFC 9113 section 7).
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;

/// One frame as it crosses the wire.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    assert!(len < 1 << 24, "frame payload too long");
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, value) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(data: [u8; 8]) -> Vec<u8> {
    frame(PING, 0, 0, &data)
}

/// A request's header block, HPACK-encoded without Huffman coding.
#[derive(Clone)]
pub struct Block(Vec<u8>);

impl Block {
    /// No header at all (for CONTINUATION frames).
    pub fn empty() -> Block {
        Block(Vec::new())
    }

    /// `:method`, `:scheme http`, `:path` and `:authority localhost`.
    pub fn request(method: &str, path: &str) -> Block {
        let mut b = Block(Vec::new());
        // Literal without indexing, names from the static table (RFC 7541 appendix A).
        b.literal_with_name_index(2, method);
        b.0.push(0x86);
        b.literal_with_name_index(4, path);
        b.literal_with_name_index(1, "localhost");
        b
    }

    /// A header as a literal that is not added to the dynamic table.
    pub fn header(mut self, name: &str, value: &str) -> Block {
        self.0.push(0x00);
        self.string(name);
        self.string(value);
        self
    }

    /// A header the decoder adds to its dynamic table (at index 62 while it
    /// is the newest entry): later blocks may name it in one byte.
    pub fn indexed_header(mut self, name: &str, value: &str) -> Block {
        self.0.push(0x40);
        self.string(name);
        self.string(value);
        self
    }

    /// `n` references to table entry `index`: one byte each for the newest
    /// dynamic entries, however long the header they stand for.
    pub fn references(mut self, index: usize, n: usize) -> Block {
        for _ in 0..n {
            integer(&mut self.0, 0x80, 7, index);
        }
        self
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn literal_with_name_index(&mut self, index: usize, value: &str) {
        integer(&mut self.0, 0x00, 4, index);
        self.string(value);
    }

    fn string(&mut self, s: &str) {
        integer(&mut self.0, 0x00, 7, s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// An HPACK integer with an `prefix`-bit prefix (RFC 7541 section 5.1).
fn integer(out: &mut Vec<u8>, first: u8, prefix: u32, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

pub fn headers(stream: u32, block: &Block, flags: u8) -> Vec<u8> {
    frame(HEADERS, flags, stream, block.bytes())
}

/// A GET with no body: one HEADERS frame ending both the headers and the stream.
pub fn get(stream: u32, block: &Block) -> Vec<u8> {
    headers(stream, block, END_HEADERS | END_STREAM)
}

#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The settings a SETTINGS frame carries.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }

    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let c = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// The server closed the connection (EOF or reset).
    Closed,
    TimedOut,
}

/// A client connection speaking HTTP/2 frames directly.
pub struct H2 {
    pub socket: TcpStream,
    buf: Vec<u8>,
    /// The server's SETTINGS, from the handshake.
    pub server_settings: Vec<(u16, u32)>,
}

impl H2 {
    /// Prior knowledge: the preface with our `settings`, then the server's
    /// SETTINGS, which we acknowledge.
    pub async fn connect(addr: SocketAddr, ours: &[(u16, u32)]) -> H2 {
        let socket = TcpStream::connect(addr).await.unwrap();
        let mut h2 = H2 {
            socket,
            buf: Vec::new(),
            server_settings: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(ours));
        h2.send(&hello).await.unwrap();
        loop {
            match h2.read_frame(Duration::from_secs(5)).await {
                Read::Frame(f) if f.kind == SETTINGS && f.flags & ACK == 0 => {
                    h2.server_settings = f.settings();
                    break;
                }
                Read::Frame(_) => {}
                other => panic!("no server SETTINGS: {other:?}"),
            }
        }
        h2.send(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
        h2
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.write_all(bytes).await
    }

    /// The next frame, if one arrives within `wait`.
    pub async fn read_frame(&mut self, wait: Duration) -> Read {
        let deadline = Instant::now() + wait;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Read::Frame(f);
                }
            }
            // `read_buf` appends what it read before a timeout cancels it.
            match tokio::time::timeout_at(deadline, self.socket.read_buf(&mut self.buf)).await {
                Err(_) => return Read::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads (and drops) frames until the server closes the connection:
    /// how long that took, or `None` if it was still open after `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + wait;
        loop {
            match self
                .read_frame(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Read::Closed => return Some(start.elapsed()),
                Read::TimedOut => return None,
                Read::Frame(_) => {}
            }
        }
    }
}

/// The resident set of process `pid` right now (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}
