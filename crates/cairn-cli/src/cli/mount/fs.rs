//! The FUSE side of `cairn mount`: answers the kernel's requests from the
//! [`Tree`] and reads files through the library's [`OpenFile`]. Read-only:
//! every request that would change something is refused by the kernel
//! (the mount is `ro`) or by fuser's defaults.
//!
//! One thread serves requests, so the state sits behind one mutex that is
//! never contended; a failed read names the file on stderr and returns EIO.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use cairn::format::name as names;
use cairn::{ChunkCache, EntryKind, OpenFile, Repository, SnapshotFilter, SnapshotInfo};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

use super::tree::{Content, Ino, Node, Shown, SnapTree, Tree, ROOT};

/// How long the kernel may cache what is inside a snapshot: it never
/// changes while the snapshot exists.
const SNAPSHOT_TTL: Duration = Duration::from_secs(60);
/// How long it may cache the folders above them, which gain snapshots.
const LISTING_TTL: Duration = Duration::from_secs(1);
/// How stale the snapshot list may get before a listing reloads it.
const RELOAD_AFTER: Duration = Duration::from_secs(1);
/// Decoded chunks kept for reads nearby (a few average chunks of a model).
const CACHE_BYTES: usize = 64 << 20;

pub struct CairnFs {
    state: Mutex<State>,
}

struct State {
    repo: Repository,
    filter: SnapshotFilter,
    snapshots: Vec<SnapshotInfo>,
    loaded: Instant,
    tree: Tree,
    files: HashMap<u64, OpenFile>,
    next_fh: u64,
    cache: ChunkCache,
    uid: u32,
    gid: u32,
}

impl CairnFs {
    /// The file system of the snapshots `filter` selects in `repo`.
    pub fn new(repo: Repository, filter: SnapshotFilter) -> cairn::Result<Self> {
        let snapshots = repo.snapshots(&filter)?;
        let tree = Tree::new(snapshots.iter().map(Shown::from).collect());
        // SAFETY: getuid/getgid cannot fail and touch no memory of ours.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(Self {
            state: Mutex::new(State {
                repo,
                filter,
                snapshots,
                loaded: Instant::now(),
                tree,
                files: HashMap::new(),
                next_fh: 1,
                cache: ChunkCache::new(CACHE_BYTES),
                uid,
                gid,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The children of `ino`, reloading the snapshot list when it is old
    /// and loading a snapshot's entries the first time they are needed.
    fn children(&mut self, ino: Ino) -> Result<Vec<(String, Ino)>, Errno> {
        let node = self.tree.node(ino).ok_or(Errno::ENOENT)?;
        let above_snapshots = !matches!(node.content, Content::Entry { .. });
        if above_snapshots && self.loaded.elapsed() >= RELOAD_AFTER {
            match self.repo.snapshots(&self.filter) {
                Ok(list) => {
                    self.tree
                        .set_snapshots(list.iter().map(Shown::from).collect());
                    self.snapshots = list;
                }
                Err(e) => eprintln!("cairn: mount: listing snapshots: {e}"),
            }
            self.loaded = Instant::now();
        }
        if let Some(id) = self.tree.needs_snap_tree(ino) {
            let info = self
                .snapshots
                .iter()
                .find(|s| s.id == id)
                .ok_or(Errno::ENOENT)?;
            let entries = self.repo.files(info).map_err(|e| {
                eprintln!("cairn: mount: snapshot {}: {e}", info.id.short());
                Errno::EIO
            })?;
            self.tree
                .add_snap_tree(SnapTree::new(Shown::from(info), entries));
        }
        self.tree.children(ino).ok_or(Errno::ENOTDIR)
    }

    fn attr(&self, ino: Ino) -> Option<(Duration, FileAttr)> {
        let node = self.tree.node(ino)?;
        let ttl = match node.content {
            Content::Entry { ref path, .. } if !path.is_empty() => SNAPSHOT_TTL,
            _ => LISTING_TTL,
        };
        Some((ttl, file_attr(ino, node, self.uid, self.gid)))
    }
}

fn file_attr(ino: Ino, node: &Node, uid: u32, gid: u32) -> FileAttr {
    let time = if node.mtime_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(node.mtime_ns as u64)
    } else {
        UNIX_EPOCH
    };
    let kind = match node.kind {
        EntryKind::Dir => FileType::Directory,
        EntryKind::File => FileType::RegularFile,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
    };
    FileAttr {
        ino: INodeNo(ino),
        size: node.size,
        blocks: node.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind,
        perm: (node.mode & 0o7777) as u16,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid,
        gid,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl Filesystem for CairnFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.state();
        let found = st.children(parent.0).and_then(|children| {
            children
                .into_iter()
                .find(|(n, _)| names::to_path(n).as_os_str() == name)
                .map(|(_, ino)| ino)
                .ok_or(Errno::ENOENT)
        });
        match found.map(|ino| st.attr(ino)) {
            Ok(Some((ttl, attr))) => reply.entry(&ttl, &attr, Generation(0)),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Some((ttl, attr)) => reply.attr(&ttl, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = self.state();
        let target = match st.tree.node(ino.0).map(|n| &n.content) {
            Some(Content::Link(t)) => Some(t.clone()),
            Some(Content::Entry { snap, path }) => st
                .tree
                .snap_tree(snap)
                .and_then(|t| t.entry(path).map(|e| e.link_target.clone())),
            _ => None,
        };
        match target {
            Some(t) => reply.data(&names::to_bytes(&t)),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state();
        let entry = match st.tree.node(ino.0).map(|n| (n.kind, &n.content)) {
            Some((EntryKind::File, Content::Entry { snap, path })) => {
                st.tree.snap_tree(snap).and_then(|t| t.entry(path).cloned())
            }
            Some((EntryKind::Dir, _)) => return reply.error(Errno::EISDIR),
            _ => None,
        };
        let Some(entry) = entry else {
            return reply.error(Errno::ENOENT);
        };
        match st.repo.open_file(entry) {
            Ok(file) => {
                let fh = st.next_fh;
                st.next_fh += 1;
                st.files.insert(fh, file);
                // A snapshot's files never change: the kernel may keep
                // their pages across opens.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => {
                eprintln!("cairn: mount: {e}");
                reply.error(Errno::EIO)
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = self.state();
        let State {
            repo, files, cache, ..
        } = &mut *st;
        let Some(file) = files.get_mut(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        match file.read_at(repo, cache, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => {
                eprintln!("cairn: mount: {e}");
                reply.error(Errno::EIO)
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.state().files.remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.state();
        let children = match st.children(ino.0) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let parent = st.tree.node(ino.0).map_or(ino.0, |n| n.parent.max(ROOT));
        let dots = [(".".to_string(), ino.0), ("..".to_string(), parent)];
        let all = dots.into_iter().chain(children);
        for (i, (name, child)) in all.enumerate().skip(offset as usize) {
            let kind = match st.tree.node(child).map(|n| n.kind) {
                Some(EntryKind::File) => FileType::RegularFile,
                Some(EntryKind::Symlink) => FileType::Symlink,
                _ => FileType::Directory,
            };
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                kind,
                names::to_path(&name).as_os_str(),
            ) {
                break;
            }
        }
        reply.ok();
    }
}
