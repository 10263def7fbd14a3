//! Random identifiers: tokens, codes and minted request ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::atomic::{AtomicU64, Ordering};

/// `n` random bytes. If the OS cannot supply randomness the bytes come from a counter and
/// the time: still unique, which is all a local sandbox needs.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = jiff::Timestamp::now().as_nanosecond() as u64;
        for (i, b) in buf.iter_mut().enumerate() {
            let word = if i % 16 < 8 { n } else { t };
            *b = word.to_le_bytes()[i % 8];
        }
    }
    buf
}

/// An opaque, URL-safe secret (256 bits).
pub(crate) fn token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A UUID-shaped request id, like the one in the documentation's example.
pub(crate) fn request_id() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
