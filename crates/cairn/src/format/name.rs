//! File names that are not UTF-8, kept byte for byte in a `String`.
//!
//! Paths inside cairn (manifests, trees, the catalog, reports) are
//! `String`s, but a Unix name is any bytes but `/` and NUL. A byte that is
//! not part of a valid UTF-8 sequence travels as one character of
//! Supplementary Private Use Area-B: byte `b` (always 0x80..=0xFF) becomes
//! U+10FF00 + `b`, in U+10FF80..=U+10FFFF. A valid name that itself holds
//! one of those 128 characters has each of that character's four bytes
//! carried the same way, so no two byte strings map to the same `String`
//! and [`to_bytes`] gives back exactly what [`from_bytes`] was given. Valid
//! UTF-8 names (all but a few) are unchanged and cost nothing.
//!
//! The carried form is what manifests, the catalog and `--json` hold; trees
//! store the bytes themselves (docs/FORMAT.md "Tree object"). [`display`]
//! shows a carried name to a person with each carried byte as `\xNN`.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Byte `b` is carried as `BASE + b`.
const BASE: u32 = 0x10_FF00;
/// The first carrying character (bytes below 0x80 are always valid UTF-8).
const FIRST: u32 = BASE + 0x80;

fn carries(c: char) -> bool {
    c as u32 >= FIRST
}

fn push_carried(out: &mut String, raw: &[u8]) {
    for &b in raw {
        out.push(char::from_u32(BASE + u32::from(b)).expect("a private-use character"));
    }
}

/// `bytes` as a `String`, every byte that is not valid UTF-8 carried.
pub fn from_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(carries) => Cow::Borrowed(s),
        _ => Cow::Owned(carry(bytes)),
    }
}

/// [`from_bytes`] of a name the OS gave.
pub fn from_os(name: &OsStr) -> Cow<'_, str> {
    from_bytes(name.as_bytes())
}

fn carry(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    while !bytes.is_empty() {
        let (valid, bad) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, 0),
            Err(e) => {
                let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix");
                (
                    valid,
                    e.error_len().unwrap_or(bytes.len() - e.valid_up_to()),
                )
            }
        };
        for c in valid.chars() {
            if carries(c) {
                push_carried(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes());
            } else {
                out.push(c);
            }
        }
        let at = valid.len();
        push_carried(&mut out, &bytes[at..at + bad]);
        bytes = &bytes[at + bad..];
    }
    out
}

/// The bytes `s` stands for (the inverse of [`from_bytes`]).
pub fn to_bytes(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(carries) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if carries(c) {
            out.push((c as u32 - BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The filesystem path a stored (relative or link-target) path stands for.
pub fn to_path(s: &str) -> Cow<'_, Path> {
    match to_bytes(s) {
        Cow::Borrowed(b) => Cow::Borrowed(Path::new(OsStr::from_bytes(b))),
        Cow::Owned(b) => Cow::Owned(std::ffi::OsString::from_vec(b).into()),
    }
}

/// `s` for a person: every carried byte shown as `\xNN` (as the errors
/// that name filesystem paths show them).
pub fn display(s: &str) -> Cow<'_, str> {
    if !s.chars().any(carries) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if carries(c) {
            out.push_str(&format!("\\x{:02x}", c as u32 - BASE));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `s` carries a byte that is not UTF-8.
pub fn is_carried(s: &str) -> bool {
    s.chars().any(carries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_unchanged_and_borrowed() {
        for s in ["", "a", "model.safetensors", "résumé/日本.txt", "a\\xff"] {
            assert!(matches!(from_bytes(s.as_bytes()), Cow::Borrowed(x) if x == s));
            assert!(matches!(to_bytes(s), Cow::Borrowed(b) if b == s.as_bytes()));
            assert_eq!(display(s), s);
        }
    }

    #[test]
    fn every_byte_string_round_trips_and_distinct_inputs_stay_distinct() {
        let cases: Vec<Vec<u8>> = vec![
            b"a\xff.bin".to_vec(),
            b"\xff".to_vec(),
            b"\xc3".to_vec(),                 // a cut sequence at the end
            b"\xc3(x".to_vec(),               // a bad continuation
            b"\xed\xa0\x80".to_vec(),         // an encoded surrogate
            "\u{10ffab}".as_bytes().to_vec(), // a carrying character, valid UTF-8
            b"\xf4\x8f\xbe".to_vec(),
            "é\u{10ff80}z".as_bytes().to_vec(),
        ];
        let mut seen = std::collections::HashSet::new();
        for raw in &cases {
            let s = from_bytes(raw).into_owned();
            assert_eq!(to_bytes(&s).as_ref(), raw.as_slice(), "{raw:?} -> {s:?}");
            assert!(seen.insert(s), "{raw:?} collides");
        }
        // A random sweep of short byte strings, biased to the tricky bytes.
        let alphabet = [
            b'a', b'/', 0x80, 0xbf, 0xc3, 0xa9, 0xed, 0xf4, 0x8f, 0xbe, 0xff,
        ];
        let mut x = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let len = (x % 7) as usize;
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    alphabet[x as usize % alphabet.len()]
                })
                .collect();
            let s = from_bytes(&raw);
            assert_eq!(to_bytes(&s).as_ref(), raw.as_slice());
            assert_eq!(from_bytes(&to_bytes(&s)), s);
        }
    }

    #[test]
    fn display_shows_carried_bytes_as_hex_escapes() {
        assert_eq!(display(&from_bytes(b"a\xff.bin")), "a\\xff.bin");
        assert!(is_carried(&from_bytes(b"a\xff")));
        assert!(!is_carried("a"));
        assert_eq!(
            to_path(&from_bytes(b"d/a\xfe")).as_os_str().as_bytes(),
            b"d/a\xfe"
        );
    }
}
