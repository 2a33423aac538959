//! Key files `keys/<id>` of an encrypted repository (docs/FORMAT.md,
//! "Key files"): the master key wrapped by one password. password →
//! Argon2id (parameters and salt stored here) → key-encryption key →
//! XChaCha20-Poly1305 seal of the master key, bound to the repository id
//! and the key file's id. Several key files wrap the same master key, so a
//! password is added, changed or removed without re-encrypting any data.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::seal::{self, Sealed, SecretKey, KEY_LEN};

/// The key prefix under which key files are stored.
pub const PREFIX: &str = "keys/";
/// Version 1: Argon2id (v0x13) + XChaCha20-Poly1305.
pub const VERSION: u32 = 1;
pub const SALT_LEN: usize = 32;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommendation, one lane
    /// as the crate computes lanes one after the other): ~0.2 s here.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    algorithm: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

/// A key file as stored (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created_ns: i64,
    pub host: String,
    kdf: Kdf,
    /// `nonce | sealed master key | tag`, hex.
    wrapped: String,
}

/// Where a key file is stored.
pub fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

impl KeyFile {
    /// Wraps `master` with `password`, for repository `repository` and key
    /// file id `id`.
    pub fn wrap(
        master: &SecretKey,
        password: &[u8],
        params: KdfParams,
        repository: &str,
        id: &str,
        host: &str,
    ) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        seal::fill_random(&mut salt);
        let kek = derive_kek(password, &salt, params)?;
        let wrapped = seal::seal(
            &kek,
            Sealed::KeyFile {
                repository,
                key: id,
            },
            master.as_bytes(),
        );
        Ok(Self {
            version: VERSION,
            created_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64),
            host: host.to_string(),
            kdf: Kdf {
                algorithm: "argon2id".into(),
                params,
                salt: hex::encode(salt),
            },
            wrapped: hex::encode(wrapped),
        })
    }

    /// The master key, if `password` opens this key file; `Ok(None)` for a
    /// wrong password (or a damaged file: the two cannot be told apart).
    pub fn unwrap_master(
        &self,
        password: &[u8],
        repository: &str,
        id: &str,
    ) -> Result<Option<SecretKey>> {
        let bad = |reason: &str| Error::BadKeyFile {
            key: key(id),
            reason: reason.into(),
        };
        let salt = hex::decode(&self.kdf.salt).map_err(|_| bad("salt is not hex"))?;
        let wrapped = hex::decode(&self.wrapped).map_err(|_| bad("wrapped key is not hex"))?;
        let kek = derive_kek(password, &salt, self.kdf.params)?;
        let Ok(plain) = seal::open(
            &kek,
            Sealed::KeyFile {
                repository,
                key: id,
            },
            &wrapped,
        ) else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        let bytes: [u8; KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| bad("wrapped key is not 32 bytes"))?;
        Ok(Some(SecretKey::from_bytes(bytes)))
    }

    pub fn params(&self) -> KdfParams {
        self.kdf.params
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("key file serialises");
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8], id: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadKeyFile {
            key: key(id),
            reason,
        };
        let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if file.version != VERSION {
            return Err(bad(format!(
                "unsupported key file version {}",
                file.version
            )));
        }
        if file.kdf.algorithm != "argon2id" {
            return Err(bad(format!("unknown kdf `{}`", file.kdf.algorithm)));
        }
        Ok(file)
    }
}

/// Argon2id of `password` with `salt`: the key-encryption key.
pub fn derive_kek(password: &[u8], salt: &[u8], params: KdfParams) -> Result<SecretKey> {
    let bad = |e: argon2::Error| Error::InvalidArgument(format!("argon2id parameters: {e}"));
    let p = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(bad)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(bad)?;
    Ok(SecretKey::from_bytes(*out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEAK: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// Argon2id known answer: password "password", salt 32 × 0x02,
    /// 64 KiB, 1 pass, 1 lane.
    #[test]
    fn kek_known_answer() {
        let kek = derive_kek(b"password", &[2; SALT_LEN], WEAK).unwrap();
        assert_eq!(hex::encode(kek.as_bytes()), KAT_KEK);
    }

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let master = SecretKey::random();
        let file = KeyFile::wrap(&master, b"pw", WEAK, "repo", "k1", "box").unwrap();
        let back = KeyFile::from_json(&file.to_json(), "k1").unwrap();
        let got = back.unwrap_master(b"pw", "repo", "k1").unwrap().unwrap();
        assert_eq!(got.as_bytes(), master.as_bytes());
        assert!(back.unwrap_master(b"nope", "repo", "k1").unwrap().is_none());
        assert!(
            back.unwrap_master(b"pw", "other", "k1").unwrap().is_none(),
            "bound to the repository"
        );
        assert!(
            back.unwrap_master(b"pw", "repo", "k2").unwrap().is_none(),
            "bound to its id"
        );
        assert!(KeyFile::from_json(b"{}", "k1").is_err());
    }

    const KAT_KEK: &str = "3b6375faed1bd18471ac312cee80fb9646b401d55a9bb636e7149ebd53849b6d";
}
