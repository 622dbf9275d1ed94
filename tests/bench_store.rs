//! Benchmarks of the recording store (run by bench/store.sh; ignored in the
//! normal test run because they measure, they do not check behaviour):
//!
//! - write throughput of segments into the store (the bytes appended to the
//!   session's journal, their places in sled), by chunk size, side by side
//!   with plain file appends fsynced at the same cadence, as multiples of the
//!   real-time rate of an 8 Mbit/s stream (goal: at least 50x), in clear and
//!   sealed (encryption at rest: each chunk sealed with ChaCha20-Poly1305
//!   before it is written, as the recorder does with recipients configured);
//! - space amplification on disk (blocks allocated, sled's files and the
//!   journals) in a steady ring of record, confirm (upload) and prune
//!   (goal: at most 1.5).

use std::io::Write;
use std::time::Instant;

use diemcau::recorder::store::{RecSession, RecStore, SegmentMeta};

/// 8 Mbit/s in bytes per second.
const RATE: f64 = 1_000_000.0;
/// The recorder flushes every 500 ms of media by default.
const FLUSH_EVERY: usize = 500_000;
/// A 2 s segment at 8 Mbit/s.
const SEGMENT: usize = 2_000_000;

fn session(id: &str) -> RecSession {
    RecSession {
        id: id.into(),
        site: "bench".into(),
        started_at: chrono::Utc::now(),
        ended_at: None,
        time_synced: true,
        started_by: "bench".into(),
        stopped_by: None,
        metadata: Default::default(),
        outcome: String::new(),
        segments: 0,
        bytes: 0,
        chain_head: String::new(),
        closed: false,
        gaps: vec![],
        manifest_confirmed_at: None,
        of: None,
        far: None,
        sealed: None,
    }
}

fn meta(seq: u32, bytes: u64, chunks: u32) -> SegmentMeta {
    SegmentMeta {
        seq,
        bytes,
        chunks,
        started_at: chrono::Utc::now(),
        duration_ms: 2000,
        sha256: String::new(),
        chain: String::new(),
        partial: false,
        confirmed_at: None,
        quarantined: None,
        pruned: false,
    }
}

/// Blocks allocated under `path`: a pruned segment's punched hole is not
/// on the disk any more, though the file keeps its length.
fn du(path: &std::path::Path) -> u64 {
    walk(path)
}

fn walk(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(p) else {
        return 0;
    };
    if md.is_file() {
        return md.blocks() * 512;
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
        .unwrap_or(0)
}

/// Write `total` bytes of segments with chunks of `chunk` bytes, flushing
/// every FLUSH_EVERY bytes as the recorder does (the journal's fsync; sled
/// writes the index behind it). Returns bytes of media per second.
fn store_rate(chunk: usize, total: usize, sealed: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .cache_capacity(16 << 20)
        .open()
        .unwrap();
    let st = RecStore::open(&db, dir.path()).unwrap();
    st.put_session(&session("s")).unwrap();
    let data = vec![0x47u8; chunk];
    let key = diemcau::recorder::seal::SessionKey::generate().unwrap();
    let t0 = Instant::now();
    let (mut written, mut since_flush, mut seg_bytes, mut seq, mut n) = (0, 0, 0, 0u32, 0u32);
    while written < total {
        if sealed {
            st.write_chunk("s", seq, n, &key.seal(seq, n, &data))
                .unwrap();
        } else {
            st.write_chunk("s", seq, n, &data).unwrap();
        }
        n += 1;
        written += chunk;
        since_flush += chunk;
        seg_bytes += chunk;
        if seg_bytes >= SEGMENT {
            st.put_segment("s", &meta(seq, seg_bytes as u64, n))
                .unwrap();
            seq += 1;
            n = 0;
            seg_bytes = 0;
        }
        if since_flush >= FLUSH_EVERY {
            st.make_durable().unwrap();
            since_flush = 0;
        }
    }
    st.flush().unwrap();
    written as f64 / t0.elapsed().as_secs_f64()
}

fn file_rate(chunk: usize, total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("append.ts")).unwrap();
    let data = vec![0x47u8; chunk];
    let t0 = Instant::now();
    let (mut written, mut since_flush) = (0, 0);
    while written < total {
        f.write_all(&data).unwrap();
        written += chunk;
        since_flush += chunk;
        if since_flush >= FLUSH_EVERY {
            f.sync_data().unwrap();
            since_flush = 0;
        }
    }
    f.sync_data().unwrap();
    written as f64 / t0.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark: run with bench/store.sh"]
fn bench_write_throughput() {
    let total = 400 << 20;
    println!(
        "write throughput, {} MiB per run, fsync every {} kB (0.5 s of 8 Mbit/s):",
        total >> 20,
        FLUSH_EVERY / 1000
    );
    for chunk in [16 << 10, 64 << 10, 256 << 10, 1 << 20] {
        let s = store_rate(chunk, total, false);
        let e = store_rate(chunk, total, true);
        let f = file_rate(chunk, total);
        println!(
            "  chunk {:>5} KiB: store (journal + sled index) {:>7.1} MB/s = {:>5.0}x real time | sealed {:>7.1} MB/s = {:>5.0}x | file append+fsync {:>7.1} MB/s = {:>5.0}x | store/file {:.2}",
            chunk >> 10,
            s / 1e6,
            s / RATE,
            e / 1e6,
            e / RATE,
            f / 1e6,
            f / RATE,
            s / f
        );
    }
}

#[test]
#[ignore = "benchmark: run with bench/store.sh"]
fn bench_space_amplification() {
    // The bytes are in the journals; sled holds 12 bytes of index per
    // chunk, the segment records and its own log's slack.
    for chunk in [64 << 10, 256 << 10, 1 << 20] {
        let worst = ring(chunk);
        println!("chunk {:>5} KiB: space amplification, worst over the steady ring: {worst:.2} (goal <= 1.5)", chunk >> 10);
    }
}

fn ring(chunk: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .cache_capacity(16 << 20)
        .open()
        .unwrap();
    let st = RecStore::open(&db, dir.path()).unwrap();
    let data = vec![0x47u8; chunk];
    // A ring: keep about 200 MB held; each round records a 20-segment
    // session, confirms it (as the uploader does) and prunes the oldest.
    let keep: u64 = 200_000_000;
    let mut held: u64 = 0;
    let mut worst: f64 = 0.0;
    for round in 0..30u32 {
        let id = format!("s{round:04}");
        st.put_session(&session(&id)).unwrap();
        for seq in 0..20u32 {
            let mut n = 0;
            let mut b = 0;
            while b < SEGMENT {
                st.write_chunk(&id, seq, n, &data).unwrap();
                n += 1;
                b += chunk;
            }
            st.put_segment(&id, &meta(seq, b as u64, n)).unwrap();
            held += b as u64;
            st.update_segment(&id, seq, |m| m.confirmed_at = Some(chrono::Utc::now()))
                .unwrap();
        }
        // The archive confirms the manifest too, as the uploader records.
        st.update_session(&id, |s| {
            s.closed = true;
            s.manifest_confirmed_at = Some(chrono::Utc::now());
        })
        .unwrap();
        if held > keep {
            held -= st.prune_confirmed(held - keep).unwrap();
        }
        st.flush().unwrap();
        if round >= 10 {
            let on_disk = du(dir.path());
            let amp = on_disk as f64 / held as f64;
            worst = worst.max(amp);
            if round % 5 == 0 {
                println!("  chunk {} KiB, round {round}: held {:.0} MB, on disk {:.0} MB, amplification {amp:.2}", chunk >> 10, held as f64 / 1e6, on_disk as f64 / 1e6);
            }
        }
    }
    worst
}
