//! `cairn mount MOUNTPOINT`: the repository's snapshots as a read-only FUSE
//! file system (layout in `mount/tree.rs`), served in the foreground until
//! it is unmounted (`fusermount -u MOUNTPOINT`) or the process gets
//! SIGINT/SIGTERM, which unmounts it.
//!
//! The mount holds a shared lock for as long as it lives (its lease is
//! refreshed by the lock's own heartbeat), so `gc` cannot delete packs
//! under an open file, while snapshots can still be taken; they show up in
//! their history's folder.
//!
//! This module and its two children are the only code that knows FUSE;
//! the library gives them listings and [`cairn::OpenFile`].

mod fs;
mod tree;

use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn::SnapshotFilter;
use fuser::{Config, MountOption, Session};

use super::args::MountArgs;
use super::Ctx;

/// The last SIGINT/SIGTERM received (0: none), set by [`on_signal`].
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

pub fn mount(ctx: &Ctx, a: MountArgs) -> Result<()> {
    check_mountpoint(&a.mountpoint)?;
    let repo = ctx.open_read_only()?;
    let location = repo.storage().location();
    let lock = repo.read_lock("mount")?;
    let filter = SnapshotFilter {
        kind: a.filter.kind,
        name: a.filter.name,
        tag: None,
    };
    let fs = fs::CairnFs::new(repo, filter)?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(format!("cairn:{location}")),
        MountOption::Subtype("cairn".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    let shown = a.mountpoint.display();
    let mut session = Session::new(fs, &a.mountpoint, &config).with_context(|| {
        format!(
            "mounting at {shown} (is /dev/fuse there, and fusermount3 or fusermount installed?)"
        )
    })?;
    let mut unmounter = session.unmount_callable();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores into an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
    let server = std::thread::spawn(move || session.run());
    if !ctx.quiet() {
        eprintln!(
            "cairn: mounted {location} at {shown}; Ctrl-C or `fusermount -u {shown}` unmounts"
        );
    }
    let mut warned_lost = false;
    while !server.is_finished() {
        if SIGNAL.swap(0, Ordering::SeqCst) != 0 {
            if let Err(e) = unmounter.unmount() {
                eprintln!("cairn: cannot unmount {shown} yet ({e}); is a process still using it? Interrupt again, or `fusermount -u {shown}` later");
            }
        }
        if !warned_lost && lock.as_ref().is_some_and(|l| l.is_lost()) {
            warned_lost = true;
            eprintln!("cairn: warning: the mount's repository lock was removed (`unlock --all`, or judged stale); a gc may now delete data that open files read");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the FUSE server thread panicked"))?;
    served.with_context(|| format!("serving the mount at {shown}"))?;
    drop(lock);
    if !ctx.quiet() {
        eprintln!("cairn: unmounted {shown}");
    }
    Ok(())
}

/// The mountpoint must be an existing directory (FUSE would say only EINVAL).
fn check_mountpoint(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{} is not a directory; mount needs an empty directory",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| {
            format!(
                "mountpoint {} (create it first: `mkdir -p {}`)",
                path.display(),
                path.display()
            )
        }),
    }
}
