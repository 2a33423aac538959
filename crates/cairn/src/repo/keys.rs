//! Unlocking an encrypted repository and managing its key files
//! (docs/FORMAT.md, "Encryption").
//!
//! The library never reads a terminal, a file or the environment for a
//! password: the program registers a [`set_password_source`] (the `cairn`
//! command reads `CAIRN_PASSWORD`, a file, a command or the terminal), and
//! every open of an encrypted repository asks it. Unlocking writes nothing,
//! so a wrong password leaves the repository exactly as it was.

use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::blob::sealed::SealedStorage;
use crate::error::{Error, Result};
use crate::format::config::{self, RepoConfig};
use crate::format::keyfile::{self, KdfParams, KeyFile};
use crate::format::seal::{self, Crypt, Keys, SecretKey};
use crate::repo::config::LoadedConfig;
use crate::repo::lock::Lock;
use crate::storage::{PutMode, Storage};

/// Why a password is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPurpose {
    /// Opening an existing repository.
    Unlock,
    /// The first password of a repository being created (`init`).
    Create,
    /// A further password (`key add`) or a replacement (`key passwd`).
    NewKey,
}

/// A password, zeroed when dropped.
pub type Password = Zeroizing<String>;

type Source = dyn Fn(&Path, PasswordPurpose) -> Result<Password> + Send + Sync;

static SOURCE: RwLock<Option<Arc<Source>>> = RwLock::new(None);
static NEW_KEY_KDF: RwLock<Option<KdfParams>> = RwLock::new(None);

/// Sets where passwords come from for this process: called with the
/// repository's location and the purpose. Without one, opening an
/// encrypted repository is [`Error::PasswordRequired`].
pub fn set_password_source(
    source: impl Fn(&Path, PasswordPurpose) -> Result<Password> + Send + Sync + 'static,
) {
    *SOURCE.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(source));
}

/// Sets the Argon2id cost of key files made from now on (default
/// [`KdfParams::default`]; tests use a cheap one).
pub fn set_new_key_kdf(params: KdfParams) {
    *NEW_KEY_KDF.write().unwrap_or_else(|e| e.into_inner()) = Some(params);
}

fn new_key_kdf() -> KdfParams {
    NEW_KEY_KDF
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default()
}

thread_local! {
    /// A password given for the opens of one call ([`with_password`]).
    static GIVEN: std::cell::RefCell<Option<Password>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `password` as the password of every repository it opens
/// or creates on this thread, ahead of the process's source: for a program
/// that holds several repositories with different passwords (the config
/// runner, the Python package).
pub fn with_password<T>(password: Password, f: impl FnOnce() -> T) -> T {
    let before = GIVEN.with(|g| g.replace(Some(password)));
    let out = f();
    GIVEN.with(|g| *g.borrow_mut() = before);
    out
}

fn password(root: &Path, purpose: PasswordPurpose) -> Result<Password> {
    if purpose != PasswordPurpose::NewKey {
        if let Some(given) = GIVEN.with(|g| g.borrow().clone()) {
            return Ok(given);
        }
    }
    let source = SOURCE.read().unwrap_or_else(|e| e.into_inner()).clone();
    match source {
        Some(source) => source(root, purpose),
        None => Err(Error::PasswordRequired { path: root.into() }),
    }
}

/// The password in the first line of the file at `path` (without its
/// `\n` or `\r\n`; nothing else is trimmed): the one reading of a
/// password file for every program (`--password-file`,
/// `$CAIRN_PASSWORD_FILE`, a runner repository's `password_file`, the Python
/// package's `password_file=`). An unreadable file, one that is not UTF-8
/// and an empty first line are [`Error::BadPasswordFile`] naming `path`.
pub fn password_from_file(path: &Path) -> Result<Password> {
    let bad = |reason: String| Error::BadPasswordFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?);
    let password = password_from_first_line(&bytes).ok_or_else(|| bad("it is not UTF-8".into()))?;
    if password.is_empty() {
        return Err(bad("its first line is empty".into()));
    }
    Ok(password)
}

/// The first line of `bytes` without its line ending, as a password;
/// `None` when that is not UTF-8 (a password command's output, a file).
pub fn password_from_first_line(bytes: &[u8]) -> Option<Password> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.split('\n').next().unwrap_or("");
    Some(Zeroizing::new(
        line.strip_suffix('\r').unwrap_or(line).to_string(),
    ))
}

fn random_id() -> String {
    let mut id = [0u8; 16];
    seal::fill_random(&mut id);
    hex::encode(id)
}

/// The storage and [`Crypt`] of a repository whose config was `loaded`:
/// as they are for an unencrypted one; for an encrypted one, unlocked
/// with a password from the source, the config's MAC checked, and the
/// storage wrapped in a [`SealedStorage`].
pub(crate) fn unlock(
    storage: &Arc<dyn Storage>,
    root: &Path,
    loaded: &LoadedConfig,
) -> Result<(Arc<dyn Storage>, Crypt)> {
    let cfg = &loaded.config;
    let config_path = root.join(config::KEY);
    if !cfg.is_encrypted() {
        if !storage.list(keyfile::PREFIX)?.is_empty() {
            return Err(Error::BadConfig {
                path: config_path,
                reason: "it says the repository is unencrypted, but it has key files under \
                         keys/: the config was replaced, refusing to write anything unencrypted"
                    .into(),
            });
        }
        return Ok((storage.clone(), Crypt::plain()));
    }
    let password = password(root, PasswordPurpose::Unlock)?;
    let mut found = None;
    for obj in storage.list(keyfile::PREFIX)? {
        let id = obj.key[keyfile::PREFIX.len()..].to_string();
        let file = KeyFile::from_json(&storage.get(&obj.key)?, &id)?;
        if let Some(master) = file.unwrap_master(password.as_bytes(), &cfg.id, &id)? {
            found = Some((master, id));
            break;
        }
    }
    let (master, id) = found.ok_or_else(|| Error::WrongPassword { path: root.into() })?;
    let crypt = Crypt::with_keys(Keys::derive(master, &id));
    // blake3::Hash compares in constant time.
    let authentic = match (cfg.mac_input(&loaded.bytes), cfg.encryption.as_ref()) {
        (Some(input), Some(e)) => {
            let mac = crypt.config_mac(&input).expect("encrypted");
            hex::decode(&e.mac)
                .ok()
                .and_then(|m| <[u8; 32]>::try_from(m).ok())
                .is_some_and(|m| mac == blake3::Hash::from(m))
        }
        _ => false,
    };
    if !authentic {
        return Err(Error::BadConfig {
            path: config_path,
            reason: "its MAC does not match: it was changed by someone without the repository key"
                .into(),
        });
    }
    Ok((
        Arc::new(SealedStorage::new(storage.clone(), crypt.clone())),
        crypt,
    ))
}

/// A new encrypted repository's first key, made in memory: the key file to
/// write before the config, the config's bytes (with its MAC) and the
/// [`Crypt`].
pub(crate) struct NewRepositoryKey {
    pub key: String,
    pub file: Vec<u8>,
    pub config: Vec<u8>,
    pub crypt: Crypt,
}

/// Makes the master key of a repository being created with `config`
/// (marked encrypted), or takes `shared` (another repository's, so that
/// the two hold the same chunk ids and sealed bytes), and asks for its
/// first password.
pub(crate) fn create(
    root: &Path,
    config: &mut RepoConfig,
    shared: Option<&SecretKey>,
) -> Result<NewRepositoryKey> {
    let password = password(root, PasswordPurpose::Create)?;
    let master = shared.map_or_else(SecretKey::random, |k| SecretKey::from_bytes(*k.as_bytes()));
    let id = random_id();
    let file = KeyFile::wrap(
        &master,
        password.as_bytes(),
        new_key_kdf(),
        &config.id,
        &id,
        &crate::host::hostname(),
    )?;
    let crypt = Crypt::with_keys(Keys::derive(master, &id));
    let bytes = config.to_json_with_mac(|b| *crypt.config_mac(b).expect("encrypted").as_bytes());
    Ok(NewRepositoryKey {
        key: keyfile::key(&id),
        file: file.to_json(),
        config: bytes,
        crypt,
    })
}

/// One key file, as `cairn key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created_ns: i64,
    pub host: String,
    /// The key this process unlocked the repository with.
    pub current: bool,
    pub kdf: KdfParams,
}

/// The key files of an unlocked repository (`crypt`) in `storage`.
pub(crate) struct KeyRing<'a> {
    pub storage: &'a Arc<dyn Storage>,
    pub root: &'a Path,
    pub config: &'a RepoConfig,
    pub crypt: &'a Crypt,
}

impl KeyRing<'_> {
    fn keys(&self) -> Result<&Keys> {
        self.crypt.keys().ok_or_else(|| Error::NotEncrypted {
            path: self.root.into(),
        })
    }

    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        self.keys()?;
        let mut out = Vec::new();
        for obj in self.storage.list(keyfile::PREFIX)? {
            let id = obj.key[keyfile::PREFIX.len()..].to_string();
            let file = KeyFile::from_json(&self.storage.get(&obj.key)?, &id)?;
            out.push(KeyInfo {
                current: self.crypt.unlocked_with() == Some(id.as_str()),
                created_ns: file.created_ns,
                host: file.host.clone(),
                kdf: file.params(),
                id,
            });
        }
        Ok(out)
    }

    /// Writes a key file for a new password (asked with
    /// [`PasswordPurpose::NewKey`]); returns its id.
    pub fn add(&self) -> Result<String> {
        let keys = self.keys()?;
        let _lock = Lock::exclusive(self.storage.clone(), "key add")?;
        self.write_new(keys)
    }

    fn write_new(&self, keys: &Keys) -> Result<String> {
        let password = password(self.root, PasswordPurpose::NewKey)?;
        let id = random_id();
        let file = KeyFile::wrap(
            keys.master(),
            password.as_bytes(),
            new_key_kdf(),
            &self.config.id,
            &id,
            &crate::host::hostname(),
        )?;
        self.storage
            .put_with(&keyfile::key(&id), &file.to_json(), PutMode::CreateNew)?;
        Ok(id)
    }

    /// Removes key `id`; refused for the last key and for the one this
    /// process unlocked with (use [`KeyRing::passwd`] to replace that).
    pub fn remove(&self, id: &str) -> Result<()> {
        self.keys()?;
        let _lock = Lock::exclusive(self.storage.clone(), "key remove")?;
        let all = self.list()?;
        let refuse = |reason| Error::KeyRemovalRefused {
            path: self.root.into(),
            id: id.to_string(),
            reason,
        };
        let Some(key) = all.iter().find(|k| k.id == id) else {
            return Err(Error::KeyNotFound {
                path: self.root.into(),
                id: id.to_string(),
            });
        };
        if all.len() == 1 {
            return Err(refuse(
                "it is the last key: without it nobody can open the repository",
            ));
        }
        if key.current {
            return Err(refuse(
                "it is the key this command was unlocked with (unlock with another password, or use `key passwd`)",
            ));
        }
        self.storage.delete(&keyfile::key(id))
    }

    /// Replaces the current key's password: the new key file is durable
    /// before the old one is deleted, so a crash leaves one that opens with
    /// the old password or the new one (or both). Returns the new id.
    pub fn passwd(&self) -> Result<String> {
        let keys = self.keys()?;
        let _lock = Lock::exclusive(self.storage.clone(), "key passwd")?;
        let old = self.crypt.unlocked_with().expect("encrypted").to_string();
        let new = self.write_new(keys)?;
        self.storage.delete(&keyfile::key(&old))?;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::location::CatalogLocation;
    use crate::ingest::chunker::ChunkerParams;
    use crate::repo::repository::{RepoStorage, Repository};
    use crate::storage::faulty::{Fault, FaultyStorage};
    use crate::storage::MemoryStorage;
    use crate::test_support::use_passwords;

    fn opens_with(mem: &MemoryStorage, cache: &CatalogLocation, pw: &str) -> bool {
        use_passwords(pw, "");
        RepoStorage::open(Arc::new(mem.clone()), cache.clone()).is_ok()
    }

    /// `key passwd` killed before each of its mutations (lock, new key
    /// file, old key file's delete, lock's delete): the repository opens
    /// with the old password or the new one, always.
    #[test]
    fn passwd_crashed_anywhere_leaves_a_password_that_opens() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CatalogLocation::cache_dir(dir.path());
        for crash_at in 1..=5 {
            let mem = MemoryStorage::new();
            use_passwords("old", "new");
            let config = RepoConfig::new(ChunkerParams::default(), 3)
                .unwrap()
                .with_encryption();
            drop(Repository::init_with(Arc::new(mem.clone()), cache.clone(), config).unwrap());
            let faulty = Arc::new(FaultyStorage::new(mem.clone(), Fault::Crash, crash_at));
            let repo = RepoStorage::open(faulty, cache.clone()).unwrap();
            let done = repo.change_password().is_ok();
            let (old, new) = (
                opens_with(&mem, &cache, "old"),
                opens_with(&mem, &cache, "new"),
            );
            assert!(old || new, "crash at mutation {crash_at}: neither opens");
            assert!(!opens_with(&mem, &cache, "other"));
            if done {
                assert!(new && !old, "finished: only the new password");
            }
        }
    }

    #[test]
    fn a_password_file_gives_its_first_line_or_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        for (bytes, want) in [
            (&b"pw\n"[..], Some("pw")),
            (b"pw\r\nmore", Some("pw")),
            (b" pw ", Some(" pw ")),
            (b"\nsecond", None),
            (&[0xff], None),
        ] {
            std::fs::write(&file, bytes).unwrap();
            match (password_from_file(&file), want) {
                (Ok(p), Some(w)) => assert_eq!(*p, w),
                (Err(Error::BadPasswordFile { path, .. }), None) => assert_eq!(path, file),
                (got, _) => panic!("{bytes:?}: {got:?}"),
            }
        }
        let missing = dir.path().join("missing");
        let err = password_from_file(&missing).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }

    /// The last key is never removed; a wrong password writes nothing.
    #[test]
    fn the_last_key_stays_and_a_wrong_password_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CatalogLocation::cache_dir(dir.path());
        let mem = MemoryStorage::new();
        use_passwords("pw", "second");
        let config = RepoConfig::new(ChunkerParams::default(), 3)
            .unwrap()
            .with_encryption();
        drop(Repository::init_with(Arc::new(mem.clone()), cache.clone(), config).unwrap());
        let repo = RepoStorage::open(Arc::new(mem.clone()), cache.clone()).unwrap();
        let only = repo.keys().unwrap()[0].id.clone();
        assert!(matches!(
            repo.remove_key(&only),
            Err(Error::KeyRemovalRefused { .. })
        ));
        let before = mem.list("").unwrap();
        use_passwords("wrong", "");
        assert!(matches!(
            RepoStorage::open(Arc::new(mem.clone()), cache.clone()),
            Err(Error::WrongPassword { .. })
        ));
        assert_eq!(mem.list("").unwrap(), before, "nothing written");
    }
}
