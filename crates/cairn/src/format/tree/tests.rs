use super::*;

fn entry(name: &str, kind: TreeKind) -> TreeEntry {
    TreeEntry {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        mtime_ns: 7,
        size: 0,
        sha256: [0; 32],
        owner: None,
        link_target: Vec::new(),
        chunks: Vec::new(),
        subtree: (kind == TreeKind::Dir).then(|| ChunkId::of(b"sub")),
        rdev: 0,
        hardlink: None,
        incomplete: false,
    }
}

/// Every field and every kind set, so a round trip covers the whole layout.
fn full() -> Tree {
    let mut file = entry("a.bin", TreeKind::File);
    file.size = 3;
    file.sha256 = [9; 32];
    file.chunks = vec![ChunkId::of(b"x"), ChunkId::of(b"y")];
    file.owner = Some((1000, 100));
    file.hardlink = Some(42);
    file.incomplete = true;
    let mut link = entry("l", TreeKind::Symlink);
    link.link_target = b"../t\xff".to_vec();
    let mut chr = entry("tty", TreeKind::CharDevice);
    chr.rdev = 0x0401;
    let mut blk = entry("sda", TreeKind::BlockDevice);
    blk.rdev = 0x0800;
    let mut entries = vec![
        file,
        entry("d", TreeKind::Dir),
        link,
        entry("p", TreeKind::Fifo),
        chr,
        blk,
        entry("né", TreeKind::File),
    ];
    entries.push(TreeEntry {
        name: b"raw\xfe".to_vec(),
        ..entry("x", TreeKind::File)
    });
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Tree { entries }
}

#[test]
fn round_trip_with_every_field() {
    let t = full();
    assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
    assert_eq!(
        Tree::decode(&Tree::default().encode()).unwrap(),
        Tree::default()
    );
}

/// Pins the layout documented in docs/FORMAT.md, byte for byte.
#[test]
fn known_bytes_of_a_small_tree() {
    let mut f = entry("a", TreeKind::File);
    f.size = 1;
    f.sha256 = [0xAA; 32];
    f.chunks = vec![ChunkId([0x11; 32])];
    let mut d = entry("b", TreeKind::Dir);
    d.mode = 0o755;
    d.subtree = Some(ChunkId([0x22; 32]));
    let bytes = Tree {
        entries: vec![f, d],
    }
    .encode();
    let mut want = vec![1u8]; // tree version
    want.extend_from_slice(&[2, 0, 0, 0]); // 2 entries
                                           // "a": name, kind file, flags 0, mode, mtime, size, sha256, link "", 1 chunk
    want.extend_from_slice(&[1, 0, 0, 0, b'a', 0, 0]);
    want.extend_from_slice(&[0xa4, 0x01, 0, 0]);
    want.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[0xAA; 32]);
    want.extend_from_slice(&[0, 0, 0, 0]);
    want.extend_from_slice(&[1, 0, 0, 0]);
    want.extend_from_slice(&[0x11; 32]);
    // "b": name, kind dir, flags 0, mode 0o755, mtime, size 0, zero sha, link "", subtree
    want.extend_from_slice(&[1, 0, 0, 0, b'b', 1, 0]);
    want.extend_from_slice(&[0xed, 0x01, 0, 0]);
    want.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[0; 8]);
    want.extend_from_slice(&[0; 32]);
    want.extend_from_slice(&[0, 0, 0, 0]);
    want.extend_from_slice(&[0x22; 32]);
    assert_eq!(bytes, want);
    assert_eq!(bytes.len(), 1 + 4 + 99 + 95);
}

#[test]
fn decode_rejects_damage() {
    let bytes = full().encode();
    for cut in [0, 1, 5, 20, bytes.len() - 1] {
        assert!(Tree::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Tree::decode(&trailing).unwrap_err().contains("trailing"));
    let mut version = bytes.clone();
    version[0] = 2;
    assert!(Tree::decode(&version).unwrap_err().contains("version 2"));
    let mut kind = Tree {
        entries: vec![entry("a", TreeKind::Fifo)],
    }
    .encode();
    kind[10] = 9;
    assert!(Tree::decode(&kind).unwrap_err().contains("kind 9"));
    let mut flags = Tree {
        entries: vec![entry("a", TreeKind::Fifo)],
    }
    .encode();
    flags[11] = 0x80;
    assert!(Tree::decode(&flags).unwrap_err().contains("flags"));
    let unsorted = Tree {
        entries: vec![entry("b", TreeKind::Fifo), entry("a", TreeKind::Fifo)],
    };
    assert!(Tree::decode(&unsorted.encode())
        .unwrap_err()
        .contains("out of order"));
    let twice = Tree {
        entries: vec![entry("a", TreeKind::Fifo), entry("a", TreeKind::Fifo)],
    };
    assert!(Tree::decode(&twice.encode()).is_err());
    for bad in ["", ".", "..", "a/b"] {
        let t = Tree {
            entries: vec![entry(bad, TreeKind::Fifo)],
        };
        assert!(
            Tree::decode(&t.encode()).unwrap_err().contains("bad name"),
            "{bad:?}"
        );
    }
    let mut huge = bytes;
    huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Tree::decode(&huge).is_err());
}

fn fe(path: &str, kind: EntryKind, sha: u8) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind,
        mode: 0o644,
        mtime_ns: 1,
        size: sha as u64,
        sha256: [sha; 32],
        link_target: if kind == EntryKind::Symlink {
            "t".into()
        } else {
            String::new()
        },
        chunks: if kind == EntryKind::File {
            vec![ChunkId::of(&[sha])]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

fn sample_files() -> Vec<FileEntry> {
    vec![
        fe("src", EntryKind::Dir, 0),
        fe("src/a", EntryKind::File, 1),
        fe("src/sub", EntryKind::Dir, 0),
        fe("src/sub/b", EntryKind::File, 2),
        fe("src/sub/link", EntryKind::Symlink, 0),
        fe("src/z", EntryKind::File, 3),
        fe("top", EntryKind::File, 4),
    ]
}

#[test]
fn build_then_expand_gives_the_files_back() {
    let id_of = |b: &[u8]| ChunkId::of(b);
    let mut files = sample_files();
    let built = build(&mut files, &id_of).unwrap();
    assert_eq!(built.trees.len(), 3);
    let dir = |p: &str| files.iter().find(|f| f.path == p).unwrap().chunks.clone();
    assert_eq!(dir("src").len(), 1, "a directory's chunks are its subtree");
    let store: HashMap<ChunkId, Vec<u8>> = built.trees.iter().cloned().collect();
    let mut fetch = |id: &ChunkId| {
        store
            .get(id)
            .cloned()
            .ok_or(Error::ChunkMissing { chunk: *id })
    };
    assert_eq!(expand(&built.root, &mut fetch, "k").unwrap(), files);

    let mut visited = HashSet::new();
    let mut marked = Vec::new();
    visit(&built.root, &mut fetch, "k", &mut visited, &mut |ids| {
        marked.extend_from_slice(ids);
        Ok(())
    })
    .unwrap();
    assert_eq!(visited.len(), 3);
    assert!(marked.contains(&dir("src/sub")[0]) && marked.contains(&ChunkId::of(&[2])));
    let before = marked.len();
    visit(&built.root, &mut fetch, "k", &mut visited, &mut |ids| {
        marked.extend_from_slice(ids);
        Ok(())
    })
    .unwrap();
    assert_eq!(marked.len(), before, "a visited tree is not read again");
}

/// Names and link targets that are not UTF-8 reach the tree as their own
/// bytes and come back as the same carried strings.
#[test]
fn names_that_are_not_utf8_are_stored_as_bytes_and_come_back() {
    let carried = |b: &[u8]| name::from_bytes(b).into_owned();
    let mut files = vec![
        fe(&carried(b"d\xff"), EntryKind::Dir, 0),
        fe(&carried(b"d\xff/a\xfe"), EntryKind::File, 1),
        fe(&carried(b"d\xff/l"), EntryKind::Symlink, 0),
        fe("z", EntryKind::File, 2),
    ];
    files[2].link_target = carried(b"t\x80");
    let id_of = |b: &[u8]| ChunkId::of(b);
    let built = build(&mut files, &id_of).unwrap();
    let store: HashMap<ChunkId, Vec<u8>> = built.trees.iter().cloned().collect();
    let dir = Tree::decode(&store[&files[0].chunks[0]]).unwrap();
    assert_eq!(dir.entries[0].name, b"a\xfe");
    assert_eq!(dir.entries[1].link_target, b"t\x80");
    let mut fetch = |id: &ChunkId| {
        store
            .get(id)
            .cloned()
            .ok_or(Error::ChunkMissing { chunk: *id })
    };
    let mut back = expand(&built.root, &mut fetch, "k").unwrap();
    back.sort_by(|a, b| a.path.cmp(&b.path));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(back, files);
}

#[test]
fn ids_are_deterministic_and_unchanged_dirs_keep_theirs() {
    let id_of = |b: &[u8]| ChunkId::of(b);
    let a = build(&mut sample_files(), &id_of).unwrap();
    let b = build(&mut sample_files(), &id_of).unwrap();
    assert_eq!(a.root, b.root);
    assert_eq!(a.trees, b.trees);
    let mut changed = sample_files();
    changed[6].sha256 = [8; 32];
    let c = build(&mut changed, &id_of).unwrap();
    assert_ne!(c.root, a.root);
    let ids = |t: &Built| t.trees.iter().map(|(id, _)| *id).collect::<HashSet<_>>();
    assert_eq!(
        ids(&a).intersection(&ids(&c)).count(),
        2,
        "only the root differs"
    );
}

#[test]
fn a_missing_tree_names_its_directory() {
    let id_of = |b: &[u8]| ChunkId::of(b);
    let mut files = sample_files();
    let built = build(&mut files, &id_of).unwrap();
    let sub = files[2].chunks[0];
    let store: HashMap<ChunkId, Vec<u8>> = built
        .trees
        .iter()
        .filter(|(id, _)| *id != sub)
        .cloned()
        .collect();
    let mut fetch = |id: &ChunkId| {
        store
            .get(id)
            .cloned()
            .ok_or(Error::ChunkMissing { chunk: *id })
    };
    let err = expand(&built.root, &mut fetch, "snapshots/x.snap").unwrap_err();
    assert!(
        matches!(&err, Error::CorruptManifest { reason, .. } if reason.contains("`src/sub`")),
        "{err}"
    );
}
