//! Buyer identifiers are personal data (PIPL). This module owns the per-store secret and the keyed hash
//! (HMAC-SHA256) that turns an identifier into the pseudonymous `customer_key` the store and reports use,
//! and the masking of display labels. Raw identifiers go only to the store's identities table.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Hex characters kept of the HMAC: 128 bits, far from collisions at any shop's customer count.
const KEY_HEX_LEN: usize = 32;

/// Computes `customer_key = HMAC-SHA256(store secret, identifier)`.
#[derive(Clone)]
pub struct KeyHasher {
    mac: Hmac<Sha256>,
}

impl KeyHasher {
    pub fn from_secret(secret: &[u8]) -> Self {
        KeyHasher {
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length"),
        }
    }

    /// Loads the store's secret, creating it (32 random bytes, mode 0600) on first use.
    pub fn for_store(path: &Path) -> Result<Self> {
        if path.exists() {
            let text = fs::read_to_string(path).with_context(|| format!("reading store secret {}", path.display()))?;
            let secret = hex::decode(text.trim())
                .with_context(|| format!("store secret {} is not hex: restore it from a backup", path.display()))?;
            if secret.len() < 16 {
                bail!("store secret {} is too short ({} bytes)", path.display(), secret.len());
            }
            return Ok(Self::from_secret(&secret));
        }
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        write_private(path, hex::encode(secret).as_bytes())?;
        Ok(Self::from_secret(&secret))
    }

    pub fn key(&self, identifier: &str) -> String {
        let hex = Self::hex(&self.digest(identifier));
        String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
    }

    /// The bytes a key is the hex of: the first half of HMAC-SHA256(secret, identifier).
    pub fn digest(&self, identifier: &str) -> [u8; KEY_HEX_LEN / 2] {
        let mut mac = self.mac.clone();
        mac.update(identifier.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; KEY_HEX_LEN / 2];
        out.copy_from_slice(&digest[..KEY_HEX_LEN / 2]);
        out
    }

    /// A key's text from its [`KeyHasher::digest`] (lower-case hex, as `hex::encode` writes it), on the
    /// stack. Every ingested row with a buyer writes one: on x86-64 the 32 digits are made 16 at a time
    /// (SSE2) instead of a table lookup per digit (the `hex` crate's, about 1 % of a large bill's ingest).
    pub fn hex(digest: &[u8; KEY_HEX_LEN / 2]) -> [u8; KEY_HEX_LEN] {
        #[cfg(target_arch = "x86_64")]
        {
            hex_sse2(digest)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mut hex = [0u8; KEY_HEX_LEN];
            hex::encode_to_slice(digest, &mut hex).expect("two hex digits per byte");
            hex
        }
    }
}

/// The hex digits of 16 bytes: each byte's high and low nibbles interleaved, then `'0' + n`, and 39 more
/// (`'a' - '0' - 10`) where `n > 9`.
#[cfg(target_arch = "x86_64")]
fn hex_sse2(digest: &[u8; 16]) -> [u8; 32] {
    use std::arch::x86_64::*;
    let mut out = [0u8; 32];
    // SAFETY: SSE2 is part of x86-64; the load reads the 16 bytes of `digest`, the stores write the 32
    // bytes of `out` (unaligned loads and stores).
    unsafe {
        let v = _mm_loadu_si128(digest.as_ptr().cast());
        let nibble = _mm_set1_epi8(0x0f);
        let high = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
        let low = _mm_and_si128(v, nibble);
        let ascii = |n: __m128i| {
            let letters = _mm_and_si128(_mm_cmpgt_epi8(n, _mm_set1_epi8(9)), _mm_set1_epi8(39));
            _mm_add_epi8(_mm_add_epi8(n, _mm_set1_epi8(b'0' as i8)), letters)
        };
        _mm_storeu_si128(out.as_mut_ptr().cast(), ascii(_mm_unpacklo_epi8(high, low)));
        _mm_storeu_si128(out.as_mut_ptr().add(16).cast(), ascii(_mm_unpackhi_epi8(high, low)));
    }
    out
}

/// Writes a store secret chosen by the caller (the demo derives one from its seed so that its synthetic
/// store is reproducible). Fails if the store already has a secret.
pub fn create_secret(path: &Path, secret: &[u8]) -> Result<()> {
    write_private(path, hex::encode(secret).as_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating store secret {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Masks a display name or nickname for reports: first character kept, the rest starred (`张三丰` -> `张**`).
/// Labels the platform already masked (`*杨(137****2600)`) are returned as they are.
pub fn mask_label(name: &str) -> String {
    if name.contains('*') {
        return name.to_string();
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count().clamp(1, 6);
            format!("{first}{}", "*".repeat(rest))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's text is what the `hex` crate writes, for every byte value in every place.
    #[test]
    fn key_text_is_lower_case_hex() {
        let mut next = crate::analytics::testing::pseudo_random(3);
        for round in 0..2000 {
            let digest: [u8; 16] = std::array::from_fn(|i| match round {
                0..=255 => (round + i) as u8,
                _ => next(256) as u8,
            });
            assert_eq!(
                KeyHasher::hex(&digest).to_vec(),
                hex::encode(digest).into_bytes(),
                "{digest:?}"
            );
        }
    }

    #[test]
    fn keyed_hash_matches_rfc4231_style_reference() {
        // HMAC-SHA256(key = "key", "The quick brown fox jumps over the lazy dog") is a published value.
        let h = KeyHasher::from_secret(b"key");
        assert_eq!(
            h.key("The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143"
        );
    }

    #[test]
    fn masking() {
        assert_eq!(mask_label("张三丰"), "张**");
        assert_eq!(mask_label("*杨(137****2600)"), "*杨(137****2600)");
        assert_eq!(mask_label("A"), "A*");
    }
}
