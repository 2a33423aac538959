//! The storage contract as one test every backend runs (`run`), so Local,
//! Memory and later backends are held to exactly the same behaviour.

use bytes::Bytes;

use super::{ObjectInfo, PutMode, Storage};
use crate::error::Error;

/// Runs every contract check against `s`, which must start out empty.
pub(crate) fn run(s: &dyn Storage) {
    put_get_and_overwrite(s);
    handed_over_bytes(s);
    ranges_and_truncation(s);
    batched_ranges(s);
    missing_objects(s);
    create_new_is_exclusive(s);
    list_by_prefix_sorted(s);
    delete_is_idempotent(s);
    invalid_keys_are_refused(s);
}

fn keys(objs: Vec<ObjectInfo>) -> Vec<String> {
    objs.into_iter().map(|o| o.key).collect()
}

fn put_get_and_overwrite(s: &dyn Storage) {
    s.put("c/obj", b"first").unwrap();
    assert_eq!(s.get("c/obj").unwrap(), b"first");
    s.put_with("c/obj", b"second!", PutMode::Overwrite).unwrap();
    assert_eq!(s.get("c/obj").unwrap(), b"second!");
    assert_eq!(s.head("c/obj").unwrap(), 7);
    s.put("c/empty", b"").unwrap();
    assert_eq!(s.get("c/empty").unwrap(), b"");
    assert_eq!(s.head("c/empty").unwrap(), 0);
    for key in ["c/obj", "c/empty"] {
        s.delete(key).unwrap();
    }
}

/// `put_bytes` keeps `put_with`'s promises, and once it returns the
/// backend holds no clone of the bytes: the caller's buffer comes back for
/// the next pack to fill.
fn handed_over_bytes(s: &dyn Storage) {
    let data = Bytes::from(
        (0..300_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    s.put_bytes("h/x", data.clone(), PutMode::Overwrite)
        .unwrap();
    assert_eq!(s.get("h/x").unwrap(), data);
    let other = Bytes::from_static(b"other");
    match s.put_bytes("h/x", other, PutMode::CreateNew) {
        Err(Error::ObjectExists { key }) => assert_eq!(key, "h/x"),
        other => panic!("create-new over an object: {other:?}"),
    }
    assert_eq!(s.get("h/x").unwrap(), data);
    let back = data.try_into_mut().expect("no clone outlives the put");
    assert_eq!(back.len(), 300_000);
    s.delete("h/x").unwrap();
}

fn ranges_and_truncation(s: &dyn Storage) {
    s.put("r/x", b"0123456789").unwrap();
    assert_eq!(s.get_range("r/x", 2, 3).unwrap(), b"234");
    assert_eq!(s.get_range("r/x", 0, 10).unwrap(), b"0123456789");
    assert_eq!(s.get_range("r/x", 10, 0).unwrap(), b"");
    for (offset, len) in [(8, 3), (11, 0), (u64::MAX, 2), (0, u64::MAX)] {
        match s.get_range("r/x", offset, len) {
            Err(Error::ObjectTruncated { key, size, .. }) => {
                assert_eq!((key.as_str(), size), ("r/x", 10), "{offset}+{len}")
            }
            other => panic!("{offset}+{len}: {other:?}"),
        }
    }
    s.delete("r/x").unwrap();
}

/// `get_ranges` answers in the order asked (also more ranges than a
/// backend keeps in flight, from several objects), fails as `get_range`
/// would for a range past the end or a missing object, and takes none.
fn batched_ranges(s: &dyn Storage) {
    s.put("b/x", b"0123456789").unwrap();
    s.put("b/y", b"abcdefghij").unwrap();
    let asked: Vec<(&str, u64, u64)> = (0..20u64)
        .map(|i| {
            let (key, offset) = (["b/x", "b/y"][i as usize % 2], i % 10);
            (key, offset, (10 - offset).min(i % 4))
        })
        .collect();
    let one_by_one: Vec<Vec<u8>> = asked
        .iter()
        .map(|&(key, offset, len)| s.get_range(key, offset, len).unwrap())
        .collect();
    assert_eq!(s.get_ranges(&asked).unwrap(), one_by_one);
    assert_eq!(
        s.get_ranges(&[("b/y", 0, 2), ("b/x", 8, 2), ("b/x", 10, 0)])
            .unwrap(),
        [&b"ab"[..], b"89", b""]
    );
    assert!(s.get_ranges(&[]).unwrap().is_empty());
    match s.get_ranges(&[("b/x", 0, 2), ("b/y", 8, 3), ("b/x", 2, 2)]) {
        Err(Error::ObjectTruncated {
            key,
            offset,
            len,
            size,
        }) => assert_eq!((key.as_str(), offset, len, size), ("b/y", 8, 3, 10)),
        other => panic!("{other:?}"),
    }
    match s.get_ranges(&[("b/x", 0, 2), ("b/none", 0, 1)]) {
        Err(Error::ObjectNotFound { key }) => assert_eq!(key, "b/none"),
        other => panic!("{other:?}"),
    }
    for key in ["b/x", "b/y"] {
        s.delete(key).unwrap();
    }
}

fn missing_objects(s: &dyn Storage) {
    let not_found = |r: crate::Result<()>| {
        assert!(
            matches!(&r, Err(Error::ObjectNotFound { key }) if key == "m/none"),
            "{r:?}"
        )
    };
    not_found(s.get("m/none").map(drop));
    not_found(s.get_range("m/none", 0, 1).map(drop));
    not_found(s.head("m/none").map(drop));
}

fn create_new_is_exclusive(s: &dyn Storage) {
    s.put_with("n/lock", b"mine", PutMode::CreateNew).unwrap();
    match s.put_with("n/lock", b"theirs", PutMode::CreateNew) {
        Err(Error::ObjectExists { key }) => assert_eq!(key, "n/lock"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.get("n/lock").unwrap(),
        b"mine",
        "the loser changed nothing"
    );
    s.delete("n/lock").unwrap();
    s.put_with("n/lock", b"again", PutMode::CreateNew).unwrap();
    s.delete("n/lock").unwrap();
}

fn list_by_prefix_sorted(s: &dyn Storage) {
    // `a.b` < `a/x` < `a0` in byte order: a backend walking directories
    // must not list a directory's keys before a sibling that sorts first.
    for key in ["l/a0", "l/a/x", "l/a.b", "l/a/y/z", "lz", "l/b"] {
        s.put(key, key.as_bytes()).unwrap();
    }
    assert_eq!(
        keys(s.list("l/").unwrap()),
        ["l/a.b", "l/a/x", "l/a/y/z", "l/a0", "l/b"]
    );
    assert_eq!(keys(s.list("l/a/").unwrap()), ["l/a/x", "l/a/y/z"]);
    assert_eq!(
        keys(s.list("l/a").unwrap()).len(),
        4,
        "a prefix need not end in /"
    );
    assert_eq!(keys(s.list("l").unwrap()).len(), 6);
    assert!(s.list("nothing/").unwrap().is_empty());
    let sized = s.list("l/b").unwrap();
    assert_eq!(
        sized,
        [ObjectInfo {
            key: "l/b".into(),
            size: 3
        }]
    );

    // Streaming: the visitor may stop the listing with an error.
    let mut seen = 0;
    let stopped = s.list_each("l/", &mut |_| {
        seen += 1;
        match seen {
            2 => Err(Error::InvalidArgument("stop".into())),
            _ => Ok(()),
        }
    });
    assert!(matches!(stopped, Err(Error::InvalidArgument(_))));
    assert_eq!(seen, 2);
    for key in ["l/a0", "l/a/x", "l/a.b", "l/a/y/z", "lz", "l/b"] {
        s.delete(key).unwrap();
    }
}

fn delete_is_idempotent(s: &dyn Storage) {
    s.put("d/x", b"x").unwrap();
    s.delete("d/x").unwrap();
    s.delete("d/x").unwrap();
    s.delete("d/never").unwrap();
    assert!(matches!(s.get("d/x"), Err(Error::ObjectNotFound { .. })));
    assert!(s.list("").unwrap().is_empty(), "every check cleans up");
}

fn invalid_keys_are_refused(s: &dyn Storage) {
    for key in [
        "", "/abs", "a//b", "a/./b", "../x", "a/../b", "a/.tmp-x", ".tmp-y",
    ] {
        assert!(
            matches!(s.put(key, b"x"), Err(Error::InvalidArgument(_))),
            "{key:?}"
        );
        assert!(s.get(key).is_err(), "{key:?}");
    }
}
