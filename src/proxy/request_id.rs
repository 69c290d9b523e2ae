//! `X-Request-Id`: kept when the client's is sane (1 to 128 visible ASCII
//! characters), else generated: unique per process run, unpredictable prefix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};

use crate::http::headers;

pub fn keep_or_generate(h: &HeaderMap) -> HeaderValue {
    match h.get(&headers::X_REQUEST_ID) {
        Some(v) if is_sane(v.as_bytes()) => v.clone(),
        _ => generate(),
    }
}

fn is_sane(v: &[u8]) -> bool {
    (1..=128).contains(&v.len()) && v.iter().all(u8::is_ascii_graphic)
}

fn generate() -> HeaderValue {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut b = [0u8; 8];
        // Without OS randomness ids are still unique, just guessable.
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 32];
    hex(&mut id[..16], seed);
    hex(&mut id[16..], splitmix(seed ^ n));
    HeaderValue::from_bytes(&id).expect("hex is a valid header value")
}

/// Lower-case hex of `v` into 16 bytes (no formatting machinery on the hot path).
fn hex(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// A bijective mixer, so distinct counters give distinct ids.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        let mut h = HeaderMap::new();
        h.insert(&headers::X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(keep_or_generate(&h), "abc-123");
        for bad in ["", "has space", &"x".repeat(129)] {
            h.insert(&headers::X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = keep_or_generate(&h);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_ne!(generate(), generate());
    }
}
