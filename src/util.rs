//! Small helpers with I/O that several parts need, one of each: the atomic
//! file write, the OS's randomness, and the snapshot of a sled tree beside
//! the store. Imports nothing of ours but `core`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Replace `path` with `bytes` so that a power cut leaves the old file or the
/// new one, never a mix: write a temporary file beside it, fsync it, rename
/// it over `path`, fsync the directory. `mode` sets the new file's
/// permissions (e.g. `0o600` for a key) before any byte is written.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if let Some(m) = mode {
        opts.mode(m);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir);
    }
    Ok(())
}

/// fsync a directory, so a rename in it survives a power cut. Best effort:
/// FAT and some other filesystems refuse to sync a directory.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `NAME.tmp~` beside `path`: one name for every atomic write, so a leftover
/// of a crash is recognisable.
/// Unique per write: two writers of one file (the socket's and the NOC's
/// preset commands, say) must not share a temporary file.
fn tmp_path(path: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    // Without entropy the name is only less unique; the pid still differs
    // between processes.
    let _ = getrandom::getrandom(&mut r);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{}.tmp~", std::process::id(), hex::encode(r)));
    path.with_file_name(name)
}

/// A random number in [0, 1) from the OS; 0.5 if it has none (a backoff
/// then loses its jitter, nothing else).
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// The name of Unix account `uid` (its number when it has none), for the
/// audit trail.
pub fn user_name(uid: u32) -> String {
    let mut buf = vec![0u8; 1024];
    // SAFETY: `pwd` and `buf` outlive the call, `buf`'s length is passed,
    // and `result` is checked before the record is read; getpwuid_r is
    // the reentrant form (no shared static record).
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    format!("uid {uid}")
}

/// Where tree snapshots live, in the state directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Write all of `tree` to `state_dir/snapshots/NAME.json` atomically: what
/// comes back if sled cannot reopen the store after a power cut (sled
/// 0.34's issue #1387). For small trees that change rarely (the session
/// history, camera presets).
pub fn snapshot_tree(state_dir: &Path, tree: &sled::Tree) -> std::io::Result<()> {
    let mut entries = Vec::new();
    for kv in tree.iter() {
        let (k, v) = kv.map_err(std::io::Error::other)?;
        entries.push((hex::encode(k), hex::encode(v)));
    }
    let dir = state_dir.join(SNAPSHOT_DIR);
    std::fs::create_dir_all(&dir)?;
    let name = String::from_utf8_lossy(&tree.name()).into_owned();
    let json = serde_json::to_vec(&entries).map_err(std::io::Error::other)?;
    atomic_write(&dir.join(format!("{name}.json")), &json, Some(0o640))
}

/// Put a snapshot written by [`snapshot_tree`] back into `db` (entries
/// already there are kept). The number of entries put back.
pub fn restore_snapshot(state_dir: &Path, db: &sled::Db, name: &str) -> std::io::Result<usize> {
    let path = state_dir.join(SNAPSHOT_DIR).join(format!("{name}.json"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let entries: Vec<(String, String)> =
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    let tree = db.open_tree(name).map_err(std::io::Error::other)?;
    let mut n = 0;
    for (k, v) in entries {
        let (Ok(k), Ok(v)) = (hex::decode(&k), hex::decode(&v)) else {
            continue;
        };
        if tree
            .compare_and_swap(k, None as Option<&[u8]>, Some(v))
            .map_err(std::io::Error::other)?
            .is_ok()
        {
            n += 1;
        }
    }
    tree.flush().map_err(std::io::Error::other)?;
    Ok(n)
}

/// The kernel's view of the clock: synchronized by NTP (`adjtimex`), and
/// its maximum error estimate. The recorder notes it in each manifest, the
/// scheduler in each event, doctor reports it.
pub fn clock() -> crate::core::status::Clock {
    // SAFETY: adjtimex with `modes = 0` only reads the kernel's clock
    // state into the zeroed struct it is given.
    let (state, tx) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx)
    };
    crate::core::status::Clock {
        synchronized: state >= 0 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0,
        max_error_ms: (state >= 0).then(|| (tx.maxerror.max(0) as u64) / 1000),
        // `offset` is in nanoseconds with STA_NANO, microseconds without.
        offset_ms: (state >= 0).then(|| {
            let per_ms = if tx.status & libc::STA_NANO != 0 {
                1_000_000
            } else {
                1_000
            };
            tx.offset / per_ms
        }),
    }
}

/// Keeps the daemon's memory to what it uses. Call before the daemon's
/// threads start. Measured on the whole-room bench (`bench/uplink-cpu.sh`:
/// echo cancellation, display, recording, MQTT), at the same CPU within the
/// runs' spread; docs/PERFORMANCE.md has the rest.
pub fn limit_memory() {
    // glibc gives a thread that allocates while another holds the lock an
    // arena of its own, up to eight per core, and what is freed into an
    // arena stays there: with the forty-odd threads of a session, two
    // arenas took the peak from 108 to 98 MB, and one arena another 3 to
    // 4 MB off the whole room's (`bench/uplink-cpu.sh`), with the CPU the
    // same within the runs' spread: the threads allocate little per buffer.
    // SAFETY: mallopt sets one of malloc's tunables and touches no memory of
    // ours; no other thread allocates yet.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // x264 asks for huge pages for each of its buffers of 2 MB or more
    // (`madvise(MADV_HUGEPAGE)` in its allocator): a 720p frame then holds a
    // whole 2 MB page resident, however little of it is used, about 10 MB
    // in all.
    // SAFETY: PR_SET_THP_DISABLE sets a flag of this process and reads no
    // memory of ours. A kernel without it fails the call, which is harmless.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Opens the sled database at `path` again after a test dropped its
/// handle: sled's flusher thread lets go of the directory's lock only when
/// it next wakes (up to `flush_every_ms` later), so an immediate reopen can
/// find it still held; seen failing under CI's load.
#[cfg(test)]
pub fn reopen_sled(path: &Path) -> sled::Db {
    let t0 = std::time::Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(_) if t0.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot reopen {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_whole_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        atomic_write(&p, b"old", None).unwrap();
        atomic_write(&p, b"new contents", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new contents");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
