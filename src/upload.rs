//! Upload to the central archive: an S3-compatible object store.
//!
//! One object per segment, then the signed manifest, under
//! `PREFIX/SITE/YYYY/MM/DD/SESSION/`; with a time-stamping authority, the
//! manifest's RFC 3161 token (`manifest.tsr`) just before it, so that a
//! confirmed manifest always has its token. Each PUT carries `Content-MD5`, so the
//! store refuses a damaged body, and the returned ETag is checked against
//! the same digest; only then is the segment marked confirmed. A segment is
//! never marked confirmed on anything less, and re-sending an unconfirmed
//! segment (after a crash between the store's ack and our mark) writes the
//! identical bytes again, so nothing can change.
//!
//! The live stream has priority: while a session is live the upload waits
//! (`live_share = 0`, the default), or, where a site sets a share, uses
//! that share of the room the live stream leaves on a clean link (SRT's
//! bandwidth estimate above the live stream's ceiling), and none when there
//! is none; otherwise up to the idle cap. The body of every PUT is paced, and the rate is asked again
//! for every piece of it: a PUT that was running at the idle rate when a
//! session went live slows at once, or stops and is sent again later.
//! Failures back off up to a minute and the queue drains by itself when
//! the store is back.
//!
//! The actor is a tokio task; the blocking HTTP and store reads run on the
//! blocking pool.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Datelike, Utc};
use md5::{Digest, Md5};
use tokio::sync::watch;

use crate::config::Archive;
use crate::core::events::EventKind;
use crate::core::session::Phase;
use crate::core::status::UploadStats;
use crate::events::Outbox;
use crate::media::MediaHandle;
use crate::recorder::store::{object_name, RecSession, RecStore, TOKEN_OBJECT};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("archive endpoint {0} is not a usable URL")]
    Endpoint(String),
    #[error("PUT {key}: {message}")]
    Put { key: String, message: String },
    #[error("recording store: {0}")]
    Store(#[from] crate::recorder::store::RecError),
    #[error("time stamp from {url}: {message}; the manifest waits for it")]
    TimeStamp { url: String, message: String },
}

/// A TimeStampResp is a few KiB (the authority's certificate is in it);
/// anything past this is not one.
const MAX_TOKEN_BYTES: u64 = 256 * 1024;

/// The folder of a session in the archive.
pub fn session_prefix(a: &Archive, site: &str, s: &RecSession) -> String {
    let d = s.started_at;
    let mut p = String::new();
    if !a.prefix.is_empty() {
        p.push_str(a.prefix.trim_matches('/'));
        p.push('/');
    }
    // A far-end track lives in its room recording's folder.
    let folder = match &s.of {
        Some(room) => format!("{room}/{}", crate::recorder::store::FAR_FOLDER),
        None => s.id.clone(),
    };
    p.push_str(&format!(
        "{site}/{:04}/{:02}/{:02}/{folder}/",
        d.year(),
        d.month(),
        d.day(),
    ));
    p
}

/// The archive client: signs and sends one PUT.
pub struct Client {
    bucket: rusty_s3::Bucket,
    creds: rusty_s3::Credentials,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(a: &Archive) -> Result<Self, UploadError> {
        let url: url::Url = a
            .endpoint
            .parse()
            .map_err(|_| UploadError::Endpoint(a.endpoint.clone()))?;
        let style = if a.path_style {
            rusty_s3::UrlStyle::Path
        } else {
            rusty_s3::UrlStyle::VirtualHost
        };
        let bucket = rusty_s3::Bucket::new(url, style, a.bucket.clone(), a.region.clone())
            .map_err(|_| UploadError::Endpoint(a.endpoint.clone()))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build();
        Ok(Self {
            bucket,
            creds: rusty_s3::Credentials::new(a.access_key_id.clone(), a.secret_access_key.clone()),
            agent,
        })
    }

    /// PUT `body` at `key`; Ok only when the store confirmed these exact bytes.
    pub fn put(&self, key: &str, body: &[u8], content_type: &str) -> Result<(), UploadError> {
        self.put_paced(key, body, content_type, &|| Rate::Unlimited)
    }

    /// [`Client::put`], the body sent at the rate `rate` gives, asked again
    /// before each piece of it.
    pub fn put_paced(
        &self,
        key: &str,
        body: &[u8],
        content_type: &str,
        rate: &(dyn Fn() -> Rate + Sync),
    ) -> Result<(), UploadError> {
        use rusty_s3::S3Action;
        let md5 = Md5::digest(body);
        let md5_b64 = base64::engine::general_purpose::STANDARD.encode(md5);
        let mut action = self.bucket.put_object(Some(&self.creds), key);
        action.headers_mut().insert("content-md5", md5_b64.clone());
        let url = action.sign(Duration::from_secs(900));
        let err = |message: String| UploadError::Put {
            key: key.to_owned(),
            message,
        };
        let resp = match self
            .agent
            .put(url.as_str())
            .set("Content-MD5", &md5_b64)
            .set("Content-Type", content_type)
            .set("Content-Length", &body.len().to_string())
            .send(PacedBody {
                body,
                pos: 0,
                rate,
                bucket: Bucket::default(),
            }) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                return Err(err(format!(
                    "the store answered {code}: {}",
                    body.chars().take(300).collect::<String>()
                )));
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let etag = resp
            .header("etag")
            .unwrap_or("")
            .trim_matches('"')
            .to_ascii_lowercase();
        if etag != hex::encode(md5) {
            return Err(err(format!(
                "the store's ETag {etag:?} does not match the MD5 we sent; not marking it confirmed"
            )));
        }
        Ok(())
    }

    /// A URL that lets whoever holds it read `key` for `valid`, and nothing
    /// else: how the NOC fetches logs it asked for without the archive's
    /// keys.
    pub fn get_url(&self, key: &str, valid: Duration) -> String {
        use rusty_s3::S3Action;
        self.bucket
            .get_object(Some(&self.creds), key)
            .sign(valid)
            .to_string()
    }

    /// An RFC 3161 time stamp of `body` from the authority at `url`: the
    /// answer (a TimeStampResp, kept as it came) once it is granted, for
    /// exactly these bytes, with the nonce sent.
    pub fn time_stamp(&self, url: &str, body: &[u8]) -> Result<Vec<u8>, UploadError> {
        use crate::core::tsp;
        use sha2::Digest as _;
        let err = |message: String| UploadError::TimeStamp {
            url: url.to_owned(),
            message,
        };
        let imprint: [u8; 32] = sha2::Sha256::digest(body).into();
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).map_err(|e| err(format!("no randomness: {e}")))?;
        let resp = self
            .agent
            .post(url)
            .set("Content-Type", "application/timestamp-query")
            .send_bytes(&tsp::request(&imprint, nonce))
            .map_err(|e| match e {
                ureq::Error::Status(code, _) => err(format!("the authority answered {code}")),
                ureq::Error::Transport(t) => err(t.to_string()),
            })?;
        let mut der = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(resp.into_reader(), MAX_TOKEN_BYTES),
            &mut der,
        )
        .map_err(|e| err(e.to_string()))?;
        let token = tsp::parse_response(&der).map_err(|e| err(e.to_string()))?;
        if token.imprint != imprint {
            return Err(err("the token is for other bytes than the manifest".into()));
        }
        if !token
            .nonce
            .as_deref()
            .is_some_and(|n| tsp::same_nonce(nonce, n))
        {
            return Err(err(
                "the token does not carry our nonce (a replayed answer?)".into(),
            ));
        }
        Ok(der)
    }
}

pub struct Deps {
    pub archive: Archive,
    pub site: String,
    pub store: RecStore,
    pub key: ed25519_dalek::SigningKey,
    pub outbox: Outbox,
    pub media: MediaHandle,
    pub phase: watch::Receiver<Phase>,
    pub stats: watch::Sender<UploadStats>,
    /// Woken by `upload.retry`: cut the backoff short.
    pub retry: RetryHandle,
    /// The daemon is stopping: finish the upload in hand, then return.
    pub stopping: crate::lifecycle::Stopping,
    /// How long archived recordings stay on the box (`[recording]
    /// retention_days`); None: until the quota needs the room.
    pub retention: Option<Duration>,
    /// Where erasures by retention are recorded.
    pub audit: crate::audit::Auditor,
    /// The most the live stream puts on the link ([`live_ceiling_kbps`]).
    pub live_ceiling_kbps: u64,
}

/// Erase from the box the recordings the archive has held for longer than
/// `keep`, each in the audit trail. Never one the archive has not
/// confirmed whole: `delete` without force refuses those.
/// `failed`: recordings whose erasure failed in this run, not tried (nor
/// recorded) again until the daemon restarts.
async fn apply_retention(
    d: &Deps,
    keep: Duration,
    failed: &mut std::collections::BTreeSet<String>,
) {
    let store = d.store.clone();
    let keep_c = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let skip = failed.clone();
    let erased = tokio::task::spawn_blocking(move || -> Result<Vec<_>, UploadError> {
        let mut erased = Vec::new();
        for s in store
            .retention_due(Utc::now(), keep_c)?
            .into_iter()
            .filter(|s| !skip.contains(&s.id))
        {
            let freed = store.delete(&s.id, false);
            erased.push((s, freed));
        }
        Ok(erased)
    })
    .await;
    let erased = match erased {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return tracing::error!("retention: {e}"),
        Err(e) => return tracing::error!("retention: {e}"),
    };
    for (s, freed) in erased {
        if freed.is_err() {
            failed.insert(s.id.clone());
        }
        let outcome = match &freed {
            Ok(bytes) => format!(
                "done: {bytes} bytes freed; archived {}, kept {:.1} days",
                s.manifest_confirmed_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                keep.as_secs_f64() / 86_400.0
            ),
            Err(e) => format!("failed: {e}"),
        };
        tracing::info!(session = %s.id, "retention: {outcome}");
        let who = crate::core::audit::Who {
            detail: Some("retention".into()),
            ..crate::core::audit::Who::via("daemon")
        };
        d.audit
            .record(who, "recording.erased", Some(s.id.clone()), outcome)
            .await;
    }
}

/// Asks the uploader to try again now rather than at the end of its backoff
/// (the NOC's `upload.retry`, once it knows the archive is back).
#[derive(Clone, Default)]
pub struct RetryHandle(std::sync::Arc<tokio::sync::Notify>);

impl RetryHandle {
    pub fn retry(&self) {
        self.0.notify_one();
    }
}

/// Token-bucket-free pacing: after sending `bytes`, wait so the average
/// stays at `kbps`.
/// How fast the upload may send now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Unlimited,
    Kbps(u64),
    /// A live session needs the whole link.
    Paused,
    /// The daemon is stopping: a PUT in hand ends now (a slow link could
    /// hold it for minutes, and the stop with it) and is sent again, whole,
    /// at the next start.
    Stop,
}

/// What a PUT stopped for a live session says; the segment is sent again,
/// whole, when there is room.
const PAUSED_FOR_LIVE: &str = "paused: a live session needs the link";

/// The ceiling of what the live stream puts on the link, kbit/s: the most
/// video the uplink may send (the adaptive maximum, or the fixed bitrate),
/// the sound, and a tenth more for MPEG-TS, SRT, UDP and IP headers and
/// SRT's retransmissions.
pub fn live_ceiling_kbps(video_kbps: u32, audio_kbps: u32) -> u64 {
    (u64::from(video_kbps) + u64::from(audio_kbps)) * 11 / 10
}

/// While live: a share of the room above the live stream's ceiling on a
/// link SRT estimates at `link_kbps`, at most `cap_kbps` (0: no cap);
/// paused while the link is not `clean` (the live stream's controller saw
/// loss or a queue), with no estimate, or no room. Why not a share of the
/// whole link, as before: on a 2 Mbit/s link a 1.5 Mbit/s session got
/// 600 kbit/s of upload beside it, which its adaptive bitrate then gave way
/// to. Why the default share is 0: SRT's estimate comes from packet pairs,
/// which a shaper's burst lets through at line rate (a 2 Mbit/s token
/// bucket read as hundreds), and on a commune's link the upload can only
/// be paid for by the live stream; the box holds days of recordings, and
/// the archive has them minutes after the session.
pub fn live_rate(
    link_kbps: f64,
    clean: bool,
    ceiling_kbps: u64,
    share: f64,
    cap_kbps: u64,
) -> Rate {
    let room = link_kbps - ceiling_kbps as f64;
    let kbps = (room * share) as u64;
    if !clean || link_kbps <= 0.0 || room <= 0.0 || kbps == 0 {
        return Rate::Paused;
    }
    Rate::Kbps(if cap_kbps > 0 {
        kbps.min(cap_kbps)
    } else {
        kbps
    })
}

/// A token bucket for the PUT bodies; time passed in. Holds at most a
/// quarter second of the rate, so a pause is not followed by a burst.
#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    last: Option<std::time::Instant>,
}

impl Bucket {
    /// How long to wait before sending `n` bytes at `bytes_per_s`.
    fn wait(&mut self, n: usize, bytes_per_s: f64, now: std::time::Instant) -> Duration {
        let last = self.last.replace(now).unwrap_or(now);
        let cap = (bytes_per_s / 4.0).max(n as f64);
        self.tokens = (self.tokens + now.duration_since(last).as_secs_f64() * bytes_per_s).min(cap);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / bytes_per_s)
        }
    }
}

/// A PUT's body, sent at the rate asked for before every piece of it
/// (16 KiB, a tenth of a second at 1.3 Mbit/s).
struct PacedBody<'a> {
    body: &'a [u8],
    pos: usize,
    rate: &'a (dyn Fn() -> Rate + Sync),
    bucket: Bucket,
}

impl std::io::Read for PacedBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.body[self.pos..];
        if rest.is_empty() {
            return Ok(0);
        }
        let n = match (self.rate)() {
            Rate::Paused => return Err(std::io::Error::other(PAUSED_FOR_LIVE)),
            Rate::Stop => return Err(std::io::Error::other("the daemon is stopping")),
            Rate::Unlimited => buf.len().min(rest.len()),
            Rate::Kbps(k) => {
                let n = buf.len().min(rest.len()).min(16 << 10);
                let wait = self
                    .bucket
                    .wait(n, k as f64 * 125.0, std::time::Instant::now());
                // On the upload's blocking thread: sleeping here is the pacing.
                std::thread::sleep(wait);
                n
            }
        };
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Longest wait between attempts while the archive is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

async fn refresh_backlog(d: &Deps, stats: &mut UploadStats) {
    let store = d.store.clone();
    if let Ok(Ok((n, bytes, oldest))) = tokio::task::spawn_blocking(move || store.backlog()).await {
        stats.backlog_segments = n;
        stats.backlog_bytes = bytes;
        stats.oldest_unconfirmed_age_s = oldest.map_or(0, |o: DateTime<Utc>| {
            (Utc::now() - o).num_seconds().max(0) as u64
        });
    }
    d.stats.send_replace(stats.clone());
}

pub fn spawn(d: Deps) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(d))
}

async fn run(d: Deps) {
    let client = match Client::new(&d.archive) {
        Ok(c) => std::sync::Arc::new(c),
        Err(e) => {
            tracing::error!("archive upload disabled: {e}");
            return;
        }
    };
    let mut stats = UploadStats {
        configured: true,
        ..Default::default()
    };
    // Jittered, so a province's boxes do not all return to the archive in
    // the same second after it was down.
    let mut backoff = crate::core::backoff::Backoff::new(Duration::from_secs(1), MAX_BACKOFF)
        .with_jitter(crate::core::backoff::Jitter::Spread(0.2));
    let mut last_backlog = std::time::Instant::now() - Duration::from_secs(60);
    let mut last_retention = std::time::Instant::now() - Duration::from_secs(60);
    let mut retention_failed = std::collections::BTreeSet::new();
    let mut stopping = d.stopping.clone();
    loop {
        // Between uploads only: a PUT in hand finishes (or times out) and
        // its confirmation is written before the uploader lets go.
        if stopping.is_set() {
            tracing::info!("archive upload stopped");
            return;
        }
        if last_backlog.elapsed() >= Duration::from_secs(2) {
            last_backlog = std::time::Instant::now();
            refresh_backlog(&d, &mut stats).await;
        }
        // Cheap (one pass over the session records), so often enough that
        // a short retention in a test is seen within seconds.
        if let Some(keep) = d.retention {
            if last_retention.elapsed() >= Duration::from_secs(5) {
                last_retention = std::time::Instant::now();
                apply_retention(&d, keep, &mut retention_failed).await;
            }
        }
        let rate = rate_of(&d)();
        stats.rate_limit_kbps = match rate {
            Rate::Kbps(k) => k,
            _ => 0,
        };
        stats.paused_for_live = rate == Rate::Paused;
        if rate == Rate::Paused {
            d.stats.send_replace(stats.clone());
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopping.wait() => {}
            }
            continue;
        }
        match step(&d, &client, &mut stats).await {
            Ok(true) => {
                backoff.reset();
                if stats.last_error.take().is_some() {
                    tracing::info!("archive reachable again; upload resumes");
                }
                d.stats.send_replace(stats.clone());
            }
            Ok(false) => {
                // Nothing to do: look again soon (new segments close every few seconds).
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stopping.wait() => {}
                }
            }
            Err(_) if d.stopping.is_set() => {}
            Err(e) if e.to_string().contains(PAUSED_FOR_LIVE) => {
                tracing::info!("archive upload paused: a session went live and needs the link");
            }
            Err(e) => {
                let wait = backoff.next_delay(crate::util::random_unit());
                if stats.last_error.as_deref() != Some(&e.to_string()) {
                    tracing::warn!("archive upload failed: {e}; retrying in {wait:?}");
                }
                stats.last_error = Some(e.to_string());
                // Wait out the backoff, keeping the backlog figures current.
                let until = tokio::time::Instant::now() + wait;
                while tokio::time::Instant::now() < until {
                    refresh_backlog(&d, &mut stats).await;
                    tokio::select! {
                        _ = tokio::time::sleep_until(
                            until.min(tokio::time::Instant::now() + Duration::from_secs(2)),
                        ) => {}
                        _ = d.retry.0.notified() => {
                            tracing::info!("archive upload: retrying now, as asked");
                            backoff.reset();
                            break;
                        }
                        _ = stopping.wait() => break,
                    }
                }
            }
        }
    }
}

/// Upload one thing (a segment, or a manifest when all segments are in).
/// Ok(false) when there was nothing to upload.
/// The upload's rate as things are now, for a PUT's body to ask before
/// every piece: whether a session is live, and what SRT says of the link.
fn rate_of(d: &Deps) -> impl Fn() -> Rate + Send + Sync + 'static {
    let (phase, media, archive, ceiling, stopping) = (
        d.phase.clone(),
        d.media.clone(),
        d.archive.clone(),
        d.live_ceiling_kbps,
        d.stopping.clone(),
    );
    move || {
        if stopping.is_set() {
            Rate::Stop
        } else if *phase.borrow() == Phase::Live {
            let up = media.stats().uplink;
            let clean = up.link == crate::core::status::LinkVerdict::Clean;
            live_rate(
                up.bandwidth_mbps * 1000.0,
                clean,
                ceiling,
                archive.live_share,
                archive.live_max_kbps,
            )
        } else if archive.idle_max_kbps > 0 {
            Rate::Kbps(archive.idle_max_kbps)
        } else {
            Rate::Unlimited
        }
    }
}

async fn step(
    d: &Deps,
    client: &std::sync::Arc<Client>,
    stats: &mut UploadStats,
) -> Result<bool, UploadError> {
    let store = d.store.clone();
    let next = tokio::task::spawn_blocking(move || store.next_unconfirmed())
        .await
        .map_err(|e| UploadError::Put {
            key: String::new(),
            message: e.to_string(),
        })??;
    if let Some((session, seg)) = next {
        let key = format!(
            "{}{}",
            session_prefix(&d.archive, &d.site, &session),
            object_name(seg.seq)
        );
        let (store, client2, key2, id) = (
            d.store.clone(),
            client.clone(),
            key.clone(),
            session.id.clone(),
        );
        let rate = rate_of(d);
        let outbox = d.outbox.clone();
        let sealed = session.sealed.is_some();
        let sent = tokio::task::spawn_blocking(move || -> Result<usize, UploadError> {
            let body = store.segment_bytes(&id, seg.seq)?;
            // Checked before it leaves: the start-up check of the whole
            // backlog runs in the background and may not have got here.
            if !crate::recorder::store::bytes_match(&seg, &body) {
                crate::recorder::quarantine(&store, &outbox, &id, &seg, "found before upload")?;
                store.flush()?;
                return Ok(0);
            }
            // A sealed segment is frames of ciphertext, not a stream a
            // browser should try to play.
            let kind = if sealed {
                "application/octet-stream"
            } else {
                "video/mp2t"
            };
            client2.put_paced(&key2, &body, kind, &rate)?;
            // Confirmed by the store: only now is it marked, durably.
            store.update_segment(&id, seg.seq, |m| m.confirmed_at = Some(Utc::now()))?;
            store.flush()?;
            Ok(body.len())
        })
        .await
        .map_err(|e| UploadError::Put {
            key: key.clone(),
            message: e.to_string(),
        })??;
        if sent == 0 {
            return Ok(true);
        }
        stats.uploaded_segments += 1;
        stats.uploaded_bytes += sent as u64;
        tracing::debug!(key, bytes = sent, "segment archived");
        return Ok(true);
    }
    let store = d.store.clone();
    let due = tokio::task::spawn_blocking(move || store.manifests_due())
        .await
        .map_err(|e| UploadError::Put {
            key: String::new(),
            message: e.to_string(),
        })??;
    let Some(session) = due.into_iter().next() else {
        return Ok(false);
    };
    let key = format!(
        "{}manifest.json",
        session_prefix(&d.archive, &d.site, &session)
    );
    let (store, client2, key2, sk) = (d.store.clone(), client.clone(), key.clone(), d.key.clone());
    let id = session.id.clone();
    let tsa = d.archive.timestamp_url.clone();
    let token_key = format!(
        "{}{TOKEN_OBJECT}",
        session_prefix(&d.archive, &d.site, &session)
    );
    let m = tokio::task::spawn_blocking(
        move || -> Result<crate::recorder::store::Manifest, UploadError> {
            let mut m = store.manifest(&id, &sk)?;
            if tsa.is_some() {
                // Named in the signed manifest, so a copy without its
                // token is visibly incomplete.
                m.timestamp_authority = tsa.clone();
                m.sign(&sk);
            }
            let body = serde_json::to_vec_pretty(&m).expect("manifests serialise");
            // The token first: the manifest is the last object of a
            // recording, and its confirmation says everything is there.
            if let Some(url) = &tsa {
                let token = client2.time_stamp(url, &body)?;
                client2.put(&token_key, &token, "application/timestamp-reply")?;
            }
            client2.put(&key2, &body, "application/json")?;
            store.update_session(&id, |s| s.manifest_confirmed_at = Some(Utc::now()))?;
            store.flush()?;
            Ok(m)
        },
    )
    .await
    .map_err(|e| UploadError::Put {
        key: key.clone(),
        message: e.to_string(),
    })??;
    tracing::info!(session = %session.id, segments = m.segments.len(), "recording archived with its manifest");
    d.outbox.emit(EventKind::UploadCompleted {
        session: session.id.clone(),
        segments: m.segments.len() as u64,
        bytes: m.segments.iter().map(|s| s.bytes).sum(),
    });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_layout_is_prefix_site_date_session() {
        let a = Archive {
            endpoint: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
            bucket: "b".into(),
            prefix: "/recordings/".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            path_style: true,
            live_share: 0.3,
            live_max_kbps: 0,
            idle_max_kbps: 0,
            timestamp_url: None,
        };
        let s = RecSession {
            id: "20260102T030405Z-abcd".into(),
            site: "xa".into(),
            started_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            ended_at: None,
            time_synced: true,
            started_by: "cli".into(),
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
        };
        assert_eq!(
            session_prefix(&a, "xa", &s),
            "recordings/xa/2026/01/02/20260102T030405Z-abcd/"
        );
        let far = RecSession {
            id: "20260102T030405Z-abcd.far".into(),
            of: Some(s.id.clone()),
            ..s
        };
        assert_eq!(
            session_prefix(&a, "xa", &far),
            "recordings/xa/2026/01/02/20260102T030405Z-abcd/far/"
        );
    }

    #[test]
    fn the_bucket_keeps_the_rate_and_does_not_burst_after_a_pause() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut b = Bucket::default();
        // 125 000 bytes/s (1 Mbit/s): 12 500 bytes every 100 ms.
        assert_eq!(b.wait(12_500, 125_000.0, at(0)), Duration::from_millis(100));
        assert_eq!(
            b.wait(12_500, 125_000.0, at(100)),
            Duration::from_millis(100)
        );
        // Ten seconds idle bank a quarter second, not ten.
        let w = b.wait(31_250, 125_000.0, at(10_000));
        assert!(w.is_zero(), "{w:?}");
        assert_eq!(
            b.wait(12_500, 125_000.0, at(10_000)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_live_session_leaves_the_upload_only_the_room_above_its_ceiling() {
        // 1500 kbit/s of video and 64 of sound, plus a tenth: 1720.
        let ceiling = live_ceiling_kbps(1500, 64);
        assert_eq!(ceiling, 1720);
        // A 2 Mbit/s 4G link: 280 of room, 30% of it.
        assert_eq!(live_rate(2000.0, true, ceiling, 0.3, 1000), Rate::Kbps(84));
        // A 1.5 Mbit/s link: none; no estimate yet: none.
        assert_eq!(live_rate(1500.0, true, ceiling, 0.3, 1000), Rate::Paused);
        assert_eq!(live_rate(0.0, true, ceiling, 0.3, 1000), Rate::Paused);
        // Fiber: 30% of the room, up to the cap.
        assert_eq!(
            live_rate(50_000.0, true, ceiling, 0.3, 1000),
            Rate::Kbps(1000)
        );
        assert_eq!(
            live_rate(50_000.0, true, ceiling, 0.3, 0),
            Rate::Kbps(14_484)
        );
        // The live stream sees loss or a queue: nothing beside it.
        assert_eq!(live_rate(50_000.0, false, ceiling, 0.3, 1000), Rate::Paused);
        // The default share, 0: never while live.
        assert_eq!(live_rate(50_000.0, true, ceiling, 0.0, 1000), Rate::Paused);
    }
}
