//! Encryption at rest, byte for byte (docs/FORMAT.md, "Encryption"): the
//! subkeys a repository's master key gives, and sealing with
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`, no crypto of our
//! own). A sealed object is `nonce (24) | ciphertext | tag (16)`, with a
//! fresh random nonce per seal (no counters to share between hosts) and
//! associated data naming what the bytes are ([`Sealed`]), so bytes moved
//! from one object or chunk to another fail to open.
//!
//! [`Crypt`] is what the rest of the library holds: plain for an
//! unencrypted repository (ids are plain BLAKE3, sealing is the identity),
//! or the repository's keys. Every secret is zeroed when dropped.

use std::borrow::Cow;
use std::sync::Arc;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::format::id::ChunkId;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes a seal adds: the nonce before the ciphertext, the tag after it.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// `blake3::derive_key` contexts, one per purpose; changing one changes
/// every id and key of every encrypted repository (a format version bump).
pub const CONTEXT_CHUNK_ID: &str = "cairn 2026-12-01 chunk id key";
pub const CONTEXT_GEAR_SEED: &str = "cairn 2026-12-01 fastcdc gear seed";
pub const CONTEXT_SEAL: &str = "cairn 2026-12-01 sealing key";
pub const CONTEXT_CONFIG_MAC: &str = "cairn 2026-12-01 config mac key";

/// 32 secret bytes, zeroed when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub(crate) [u8; KEY_LEN]);

impl SecretKey {
    /// A fresh random key from the operating system.
    pub fn random() -> Self {
        let mut k = SecretKey([0; KEY_LEN]);
        fill_random(&mut k.0);
        k
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Fills `out` from the operating system's random source. Failing to get
/// randomness is not recoverable (a repeated nonce would be worse).
pub fn fill_random(out: &mut [u8]) {
    getrandom::fill(out).expect("the operating system's random source failed");
}

/// What sealed bytes are: the associated data binds them to their place.
#[derive(Debug, Clone, Copy)]
pub enum Sealed<'a> {
    /// A chunk's stored bytes, bound to its (keyed) id.
    Chunk(&'a ChunkId),
    /// A pack's trailer. Not bound to the pack id, which hashes the sealed
    /// trailer; each chunk it lists is bound to its id instead.
    PackTrailer,
    /// A whole object (a manifest, `policies`, a forget intent), bound to
    /// its storage key, which names its type and id.
    Object(&'a str),
    /// A key file's wrapped master key, bound to the repository id and the
    /// key file's id.
    KeyFile { repository: &'a str, key: &'a str },
}

impl Sealed<'_> {
    /// The associated data (docs/FORMAT.md gives each form).
    pub fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(64);
        match self {
            Sealed::Chunk(id) => {
                ad.extend_from_slice(b"cairn chunk\0");
                ad.extend_from_slice(&id.0);
            }
            Sealed::PackTrailer => ad.extend_from_slice(b"cairn pack trailer\0"),
            Sealed::Object(key) => {
                ad.extend_from_slice(b"cairn object\0");
                ad.extend_from_slice(key.as_bytes());
            }
            Sealed::KeyFile { repository, key } => {
                ad.extend_from_slice(b"cairn key file\0");
                ad.extend_from_slice(repository.as_bytes());
                ad.push(0);
                ad.extend_from_slice(key.as_bytes());
            }
        }
        ad
    }
}

/// Seals `plaintext` under `key` with `nonce`: `nonce | ciphertext | tag`.
/// Callers use [`seal`]; a fixed nonce is for known-answer tests.
pub fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    what: Sealed,
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    seal_in(&cipher, nonce, what, plaintext)
}

fn seal_in(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; NONCE_LEN],
    what: Sealed,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(
            nonce.into(),
            &what.associated_data(),
            (&mut out[NONCE_LEN..]).into(),
        )
        .expect("XChaCha20-Poly1305 seals any length we store");
    out.extend_from_slice(&tag);
    out
}

/// Seals `plaintext` under `key` with a fresh random nonce.
pub fn seal(key: &SecretKey, what: Sealed, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    seal_with_nonce(key, &nonce, what, plaintext)
}

/// Opens `nonce | ciphertext | tag` sealed as `what`; any change to the
/// bytes or a different `what` fails.
pub fn open(key: &SecretKey, what: Sealed, sealed: &[u8]) -> Result<Vec<u8>, String> {
    open_in(&XChaCha20Poly1305::new(key.as_bytes().into()), what, sealed)
}

fn open_in(cipher: &XChaCha20Poly1305, what: Sealed, sealed: &[u8]) -> Result<Vec<u8>, String> {
    let (nonce, body, tag) = split_sealed(sealed)?;
    let mut plain = body.to_vec();
    decrypt(cipher, what, nonce, &mut plain, tag)?;
    Ok(plain)
}

/// [`open_in`] without a copy: the plaintext is decrypted where the
/// ciphertext lies and returned as the middle of `sealed`. The tag is
/// checked over the ciphertext before anything is decrypted, so on `Err`
/// `sealed` holds what it held: no unauthenticated plaintext exists.
fn open_in_place_in<'b>(
    cipher: &XChaCha20Poly1305,
    what: Sealed,
    sealed: &'b mut [u8],
) -> Result<&'b [u8], String> {
    let (nonce, body, tag) = split_sealed(sealed)?;
    let (nonce, tag, len) = (*nonce, *tag, body.len());
    let body = &mut sealed[NONCE_LEN..NONCE_LEN + len];
    decrypt(cipher, what, &nonce, body, &tag)?;
    Ok(body)
}

/// The nonce, ciphertext and tag of a sealed object.
type SealedParts<'a> = (&'a [u8; NONCE_LEN], &'a [u8], &'a [u8; TAG_LEN]);

/// `nonce | ciphertext | tag`, or why the bytes are too short to be one.
fn split_sealed(sealed: &[u8]) -> Result<SealedParts<'_>, String> {
    if sealed.len() < OVERHEAD {
        return Err(format!(
            "sealed object too short ({} bytes, at least {OVERHEAD})",
            sealed.len()
        ));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok((
        nonce.try_into().expect("24 bytes"),
        body,
        tag.try_into().expect("16 bytes"),
    ))
}

/// Authenticates `body` (the ciphertext) with `tag` and, only if that
/// holds, decrypts it in place (the crate checks before it decrypts).
fn decrypt(
    cipher: &XChaCha20Poly1305,
    what: Sealed,
    nonce: &[u8; NONCE_LEN],
    body: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), String> {
    cipher
        .decrypt_inout_detached(
            <&XNonce>::from(nonce),
            &what.associated_data(),
            body.into(),
            <&chacha20poly1305::Tag>::from(tag),
        )
        .map_err(|_| "authentication failed (damaged, tampered with, or moved)".to_string())
}

/// The subkeys of a repository's master key, each for one purpose.
pub struct Keys {
    master: SecretKey,
    chunk_id: SecretKey,
    gear_seed: u64,
    cipher: XChaCha20Poly1305,
    config_mac: SecretKey,
    /// The key file the password opened (`key passwd` replaces it).
    unlocked_with: String,
}

impl Keys {
    /// Derives every subkey from `master` (see the `CONTEXT_*` constants).
    pub fn derive(master: SecretKey, unlocked_with: &str) -> Self {
        let sub = |context| SecretKey(blake3::derive_key(context, master.as_bytes()));
        let seed = sub(CONTEXT_GEAR_SEED);
        let gear_seed = u64::from_le_bytes(seed.0[..8].try_into().expect("8 bytes")).max(1);
        let seal = sub(CONTEXT_SEAL);
        Self {
            chunk_id: sub(CONTEXT_CHUNK_ID),
            gear_seed,
            cipher: XChaCha20Poly1305::new(seal.as_bytes().into()),
            config_mac: sub(CONTEXT_CONFIG_MAC),
            master,
            unlocked_with: unlocked_with.to_string(),
        }
    }

    pub fn master(&self) -> &SecretKey {
        &self.master
    }
}

/// How a repository's bytes are sealed: in the clear, or with its [`Keys`].
/// Cheap to clone (the keys are shared).
#[derive(Clone, Default)]
pub struct Crypt(Option<Arc<Keys>>);

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Crypt(encrypted)"
        } else {
            "Crypt(plain)"
        })
    }
}

impl Crypt {
    /// An unencrypted repository.
    pub fn plain() -> Self {
        Crypt(None)
    }

    pub fn with_keys(keys: Keys) -> Self {
        Crypt(Some(Arc::new(keys)))
    }

    pub fn is_encrypted(&self) -> bool {
        self.0.is_some()
    }

    pub fn keys(&self) -> Option<&Keys> {
        self.0.as_deref()
    }

    /// The id of the key file the repository was unlocked with.
    pub fn unlocked_with(&self) -> Option<&str> {
        self.keys().map(|k| k.unlocked_with.as_str())
    }

    /// A chunk's id: BLAKE3 of its bytes, keyed with the chunk-id key in
    /// an encrypted repository (so a known file cannot be confirmed).
    pub fn chunk_id(&self, raw: &[u8]) -> ChunkId {
        match self.keys() {
            None => ChunkId::of(raw),
            Some(k) => ChunkId(*blake3::keyed_hash(k.chunk_id.as_bytes(), raw).as_bytes()),
        }
    }

    /// The FastCDC gear seed: 0 (the crate's default table) when plain.
    pub fn gear_seed(&self) -> u64 {
        self.keys().map_or(0, |k| k.gear_seed)
    }

    /// Seals `plaintext` as `what` (plain: the bytes as they are).
    pub fn seal<'a>(&self, what: Sealed, plaintext: &'a [u8]) -> Cow<'a, [u8]> {
        match self.keys() {
            None => Cow::Borrowed(plaintext),
            Some(k) => {
                let mut nonce = [0u8; NONCE_LEN];
                fill_random(&mut nonce);
                Cow::Owned(seal_in(&k.cipher, &nonce, what, plaintext))
            }
        }
    }

    /// Opens bytes sealed as `what` (plain: the bytes as they are).
    pub fn open<'a>(&self, what: Sealed, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
        match self.keys() {
            None => Ok(Cow::Borrowed(stored)),
            Some(k) => open_in(&k.cipher, what, stored).map(Cow::Owned),
        }
    }

    /// [`Crypt::open`] in place: the opened bytes are a slice of `stored`,
    /// decrypted where they lie, with no copy (plain: `stored` as it is).
    /// On `Err`, `stored` is unchanged and still sealed.
    pub fn open_in_place<'a>(
        &self,
        what: Sealed,
        stored: &'a mut [u8],
    ) -> Result<&'a [u8], String> {
        match self.keys() {
            None => Ok(stored),
            Some(k) => open_in_place_in(&k.cipher, what, stored),
        }
    }

    /// Bytes a seal adds (0 when plain).
    pub fn overhead(&self) -> usize {
        if self.is_encrypted() {
            OVERHEAD
        } else {
            0
        }
    }

    /// The config's MAC: keyed BLAKE3 with the config MAC key (`None` when
    /// plain).
    pub fn config_mac(&self, bytes: &[u8]) -> Option<blake3::Hash> {
        self.keys()
            .map(|k| blake3::keyed_hash(k.config_mac.as_bytes(), bytes))
    }

    /// The sealing key itself, for known-answer tests.
    #[cfg(test)]
    pub(crate) fn seal_key(&self) -> SecretKey {
        let master = self.keys().expect("encrypted").master();
        SecretKey(blake3::derive_key(CONTEXT_SEAL, master.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
