//! Known answers: a fixed master key, nonce and plaintext give fixed bytes,
//! so a change of context, associated data or layout cannot pass unnoticed.

use super::*;

fn master() -> SecretKey {
    SecretKey::from_bytes(std::array::from_fn(|i| i as u8))
}

const NONCE: [u8; NONCE_LEN] = [0x24; NONCE_LEN];

/// The subkeys of master key 00 01 02 … 1f.
#[test]
fn subkeys_known_answers() {
    let crypt = Crypt::with_keys(Keys::derive(master(), "k"));
    let k = crypt.keys().unwrap();
    assert_eq!(hex::encode(k.chunk_id.as_bytes()), KAT_CHUNK_ID_KEY);
    assert_eq!(hex::encode(crypt.seal_key().as_bytes()), KAT_SEAL_KEY);
    assert_eq!(hex::encode(k.config_mac.as_bytes()), KAT_CONFIG_MAC_KEY);
    assert_eq!(k.gear_seed, KAT_GEAR_SEED);
    assert_eq!(crypt.chunk_id(b"hello").to_hex(), KAT_CHUNK_ID_HELLO);
    assert_ne!(crypt.chunk_id(b"hello"), ChunkId::of(b"hello"), "keyed");
    assert_eq!(Crypt::plain().chunk_id(b"hello"), ChunkId::of(b"hello"));
}

/// Sealing with the derived sealing key and a fixed nonce.
#[test]
fn sealing_known_answers() {
    let crypt = Crypt::with_keys(Keys::derive(master(), "k"));
    let key = &crypt.seal_key();
    let chunk = ChunkId([7; 32]);
    let cases = [
        (Sealed::Chunk(&chunk), KAT_SEALED_CHUNK),
        (Sealed::PackTrailer, KAT_SEALED_TRAILER),
        (Sealed::Object("policies"), KAT_SEALED_OBJECT),
        (
            Sealed::KeyFile {
                repository: "ab",
                key: "cd",
            },
            KAT_SEALED_KEYFILE,
        ),
    ];
    for (what, expected) in cases {
        let sealed = seal_with_nonce(key, &NONCE, what, b"cairn");
        assert_eq!(hex::encode(&sealed), expected, "{what:?}");
        assert_eq!(open(key, what, &sealed).unwrap(), b"cairn");
    }
}

/// XChaCha20-Poly1305 itself: the test vector of draft-irtf-cfrg-xchacha-03
/// (A.3.1), through the same calls the sealing uses.
#[test]
fn xchacha20poly1305_draft_vector() {
    let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let nonce: [u8; 24] = std::array::from_fn(|i| 0x40 + i as u8);
    let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
    let mut buf = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
    let cipher = XChaCha20Poly1305::new((&key).into());
    let tag = cipher
        .encrypt_inout_detached((&nonce).into(), &aad, buf.as_mut_slice().into())
        .unwrap();
    assert_eq!(hex::encode(&buf[..16]), "bd6d179d3e83d43b9576579493c0e939");
    assert_eq!(hex::encode(tag), "c0875924c1c7987947deafd8780acf49");
}

/// A flipped bit, a different place (associated data) or a different key
/// all fail to open.
#[test]
fn tampering_and_moving_fail() {
    let crypt = Crypt::with_keys(Keys::derive(master(), "k"));
    let a = ChunkId([1; 32]);
    let b = ChunkId([2; 32]);
    let sealed = crypt.seal(Sealed::Chunk(&a), b"bytes").into_owned();
    assert_eq!(&*crypt.open(Sealed::Chunk(&a), &sealed).unwrap(), b"bytes");
    assert!(crypt.open(Sealed::Chunk(&b), &sealed).is_err(), "moved");
    for bit in [0, 8 * NONCE_LEN + 3, 8 * sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(crypt.open(Sealed::Chunk(&a), &bad).is_err(), "bit {bit}");
    }
    assert!(crypt.open(Sealed::Chunk(&a), &sealed[..10]).is_err());
    let other = Crypt::with_keys(Keys::derive(SecretKey::from_bytes([9; 32]), "k"));
    assert!(other.open(Sealed::Chunk(&a), &sealed).is_err(), "other key");
    assert_ne!(
        crypt.seal(Sealed::Chunk(&a), b"bytes"),
        crypt.seal(Sealed::Chunk(&a), b"bytes"),
        "fresh nonce per seal"
    );
    let plain = Crypt::plain();
    assert_eq!(&*plain.seal(Sealed::Chunk(&a), b"x"), b"x");
}

/// Opening in place gives the bytes `open` gives, as a slice of the
/// buffer; a tampered, moved or short seal fails and leaves the buffer as
/// it was, so no unauthenticated plaintext is ever exposed.
#[test]
fn open_in_place_matches_open_and_leaves_tampered_bytes_sealed() {
    let crypt = Crypt::with_keys(Keys::derive(master(), "k"));
    let (a, b) = (ChunkId([1; 32]), ChunkId([2; 32]));
    let plaintext = crate::test_support::random_bytes(5, 70_000);
    let sealed = crypt.seal(Sealed::Chunk(&a), &plaintext).into_owned();
    let mut buf = sealed.clone();
    let opened = crypt.open_in_place(Sealed::Chunk(&a), &mut buf).unwrap();
    assert_eq!(opened, &plaintext[..]);
    assert_eq!(opened, &*crypt.open(Sealed::Chunk(&a), &sealed).unwrap());
    assert_eq!(&buf[NONCE_LEN..buf.len() - TAG_LEN], &plaintext[..]);
    let mut moved = sealed.clone();
    assert!(crypt.open_in_place(Sealed::Chunk(&b), &mut moved).is_err());
    assert_eq!(moved, sealed, "moved: left sealed");
    for at in [0, NONCE_LEN + 1, sealed.len() / 2, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x10;
        let before = bad.clone();
        assert!(
            crypt.open_in_place(Sealed::Chunk(&a), &mut bad).is_err(),
            "byte {at}"
        );
        assert_eq!(bad, before, "byte {at}: left as it was");
    }
    let mut short = sealed[..OVERHEAD - 1].to_vec();
    assert!(crypt.open_in_place(Sealed::Chunk(&a), &mut short).is_err());
    let mut plain_bytes = b"as is".to_vec();
    assert_eq!(
        Crypt::plain()
            .open_in_place(Sealed::Chunk(&a), &mut plain_bytes)
            .unwrap(),
        b"as is"
    );
}

const KAT_CHUNK_ID_KEY: &str = "aafc20bd8d5de4a7d71a11d0c66446187bb7c4e6dac69d68a44e5f6d588afc1a";
const KAT_SEAL_KEY: &str = "e24321fc036dd3edf25cbfcb026a2af6ee961b05222183d18e703e7308d71d86";
const KAT_CONFIG_MAC_KEY: &str = "a11f780ea9f5be86d54f27afd0f5b631a41e8450bdba529f7e95e7acebed1b89";
const KAT_GEAR_SEED: u64 = 7433525513728679328;
const KAT_CHUNK_ID_HELLO: &str = "175937ab9e6b81c7506956f0460730260263019f12c4ee10743f03b5d6593a9e";
const KAT_SEALED_CHUNK: &str =
    "24242424242424242424242424242424242424242424242459b19b41681aeb6cdb8c159a87a2aed1402f4ea7d4";
const KAT_SEALED_TRAILER: &str =
    "24242424242424242424242424242424242424242424242459b19b416825ca164667349b2cf9fbed415e3207d6";
const KAT_SEALED_OBJECT: &str =
    "24242424242424242424242424242424242424242424242459b19b416876cedd56f133c53dd53d2d91e750c142";
const KAT_SEALED_KEYFILE: &str =
    "24242424242424242424242424242424242424242424242459b19b4168b914d780211c735b68fd1de44d91e544";
