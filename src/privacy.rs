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

    /// A key's text from its [`KeyHasher::digest`], on the stack.
    pub fn hex(digest: &[u8; KEY_HEX_LEN / 2]) -> [u8; KEY_HEX_LEN] {
        let mut hex = [0u8; KEY_HEX_LEN];
        hex::encode_to_slice(digest, &mut hex).expect("two hex digits per byte");
        hex
    }
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
