//! `diemcau run`: wire the actors together, serve until SIGTERM/SIGINT, end
//! the live session cleanly, exit.

use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::{
    api, button, camera, control, display, events, led, media, mqtt, recorder, store, supervisor,
    systemd, upload,
};

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM/SIGINT: stop.
    Stopped,
    /// A new configuration was written: start again with it.
    Restart,
}

pub fn run(config: Config) -> anyhow::Result<Exit> {
    crate::util::limit_memory();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<Exit> {
    let state_dir = &config.daemon.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let (store, set_aside) = store::Store::open_or_set_aside(state_dir, chrono::Utc::now())?;
    let mut outbox = events::Outbox::open(store.db(), &config.site.id)?;
    if let Some((path, reason)) = set_aside {
        outbox.rebase(chrono::Utc::now())?;
        // Events the NOC never acknowledged, from the outbox's mirror. One
        // that cannot be read is kept aside, not compacted over.
        match outbox.restore_mirror(state_dir) {
            Ok(n) => {
                tracing::warn!("{n} unacknowledged events brought back from the outbox's mirror")
            }
            Err(e) => {
                let mirror = state_dir.join(events::MIRROR_FILE);
                let kept = mirror.with_extension(format!(
                    "jsonl.unread-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
                ));
                let _ = std::fs::rename(&mirror, &kept);
                tracing::error!(
                    "events not brought back: {e}; the mirror is kept at {}",
                    kept.display()
                );
            }
        }
        tracing::error!(
            path = %path.display(),
            "the state store could not be reopened after an unclean stop ({reason}); \
             it is kept at {} and the box goes on with a fresh one: call a technician",
            path.display()
        );
        outbox.emit(crate::core::events::EventKind::StoreSetAside {
            path: path.display().to_string(),
            reason,
        });
    }
    // From here on every event is mirrored beside the store.
    let outbox = outbox.with_mirror(state_dir)?;
    media::init()?;
    // Asked for by `config.set` once the new file is written.
    let restart = crate::lifecycle::Restart::new();
    // Media and the recorder report to the supervisor on one channel.
    let (media_tx, media_events) = tokio::sync::mpsc::unbounded_channel();
    let rec_store = recorder::store::RecStore::open(store.db(), state_dir)?;
    let device_key = recorder::keys::load_or_create(state_dir)?;
    // Recordings the store lost (it was set aside above) come back from
    // their journals, before recovery closes whatever was live.
    let salvaged = rec_store.reconcile_journals().unwrap_or_else(|e| {
        tracing::error!("recording journals not read: {e}; they stay in place");
        Vec::new()
    });
    for s in salvaged {
        tracing::warn!(
            session = %s.session,
            segments = s.segments,
            chunks = s.chunks,
            bytes = s.bytes,
            torn_bytes = s.torn_bytes,
            tail_only = s.tail_only,
            "recording brought back from its journal"
        );
        outbox.emit(crate::core::events::EventKind::RecordingSalvaged {
            session: s.session,
            segments: s.segments,
            bytes: s.bytes,
        });
    }
    let found = recorder::recover(&rec_store, &outbox, chrono::Utc::now())?;
    if !found.closed.is_empty() || !found.quarantined.is_empty() {
        tracing::warn!(
            interrupted = ?found.closed,
            partial_segments = found.partial_segments,
            quarantined = ?found.quarantined,
            "recording buffer checked after an unclean stop"
        );
    }
    let rec = if config.recording.enabled {
        Some(recorder::spawn(
            config.recording.clone(),
            state_dir.clone(),
            config.site.id.clone(),
            rec_store.clone(),
            outbox.clone(),
            media_tx.clone(),
        )?)
    } else {
        tracing::warn!("recording is disabled in the configuration: sessions are not recorded");
        None
    };
    let presets = camera::Presets::open(store.db())?.with_snapshot(state_dir);
    let links = media::link_memory::LinkMemory::open(store.db())?;
    let media = media::spawn(
        config.clone(),
        media_tx.clone(),
        rec,
        Some(presets.clone()),
        Some(links),
    )?;
    let (call_tx, call_stats) =
        tokio::sync::watch::channel(crate::core::status::CallStats::default());
    let (upload_tx, upload_stats) =
        tokio::sync::watch::channel(crate::core::status::UploadStats::default());
    // The audit trail; what was written while the daemon was stopped
    // (provisioning, the CLI on the store) goes to the NOC now.
    let audit = crate::audit::Auditor::new(
        crate::audit::AuditLog::new(state_dir),
        outbox.clone(),
        store.db(),
    )?;
    {
        let a = audit.clone();
        match tokio::task::spawn_blocking(move || a.forward()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("audit trail not sent to the NOC: {e}"),
            Err(e) => tracing::error!("audit trail not sent to the NOC: {e}"),
        }
    }
    // The scheduler's view goes into the status the supervisor serves.
    let (schedule_tx, schedule_status) =
        tokio::sync::watch::channel(crate::core::status::ScheduleStatus::default());
    let sup = supervisor::spawn(
        config.clone(),
        store.clone(),
        outbox.clone(),
        media.clone(),
        media_events,
        upload_stats,
        call_stats,
        schedule_status,
    )?;
    // The archive upload drains the recording buffer, live stream first.
    let upload_retry = config
        .archive
        .as_ref()
        .map(|_| upload::RetryHandle::default());
    // Told when the daemon stops; the actors that hold one return by themselves.
    let (shutdown, stopping) = crate::lifecycle::shutdown();
    let uploader =
        if let (Some(archive), Some(retry)) = (config.archive.clone(), upload_retry.clone()) {
            Some(upload::spawn(upload::Deps {
                retry,
                stopping: stopping.clone(),
                archive,
                site: config.site.id.clone(),
                store: rec_store.clone(),
                key: device_key.clone(),
                outbox: outbox.clone(),
                media: media.clone(),
                phase: sup.phase.clone(),
                stats: upload_tx,
                retention: config.recording.retention,
                audit: audit.clone(),
                live_ceiling_kbps: upload::live_ceiling_kbps(
                    if config.uplink.adaptive_bitrate {
                        config.video.max_bitrate_kbps
                    } else {
                        config.video.bitrate_kbps
                    },
                    config.audio.bitrate_kbps,
                ),
            }))
        } else {
            None
        };
    // The SIP room endpoint, when the room joins the conference by SIP.
    let sip = config.sip.clone().map(|cfg| {
        crate::sip::spawn(crate::sip::Deps {
            config: cfg,
            site_id: config.site.id.clone(),
            video_kbps: config.video.bitrate_kbps,
            media: media.clone(),
            supervisor: sup.handle.clone(),
            phase: sup.phase.clone(),
            events: media_tx.clone(),
            outbox: outbox.clone(),
            stats: call_tx,
            stopping: stopping.clone(),
        })
    });
    // The room's button and tally light; both follow the supervisor's phase.
    let button = button::spawn(
        &config.button,
        sup.handle.clone(),
        sup.phase.clone(),
        outbox.clone(),
    );
    let led = led::spawn(
        &config.led,
        sup.handle.clone(),
        sup.phase.clone(),
        button.hint.clone(),
    );
    // The NOC's scheduled sessions, by the box's own clock; a press during
    // the warning before a planned end (a hint while live) puts it off.
    let (schedule, schedule_task) = crate::schedule::spawn(crate::schedule::Deps {
        config: config.schedule.clone(),
        supervisor: sup.handle.clone(),
        phase: sup.phase.clone(),
        db: store.db().clone(),
        outbox: outbox.clone(),
        hints: button.hint.clone(),
        status: schedule_tx,
        stopping: stopping.clone(),
    })?;
    // The screen and speaker run for the daemon's whole life.
    let (test_pattern, pattern_rx) = display::TestSignal::new();
    let (test_tone, tone_rx) = display::TestSignal::new();
    let (screen, screen_requests) = display::screen_channel();
    let display = display::spawn(
        config.clone(),
        sup.handle.clone(),
        Some(button::display_hints(
            button.hint.clone(),
            config.daemon.language,
        )),
        pattern_rx,
        tone_rx,
        screen_requests,
    );
    // The command layer: every operator command, from the socket or MQTT.
    let control = control::Control::new(control::Deps {
        audit,
        supervisor: sup.handle.clone(),
        phase: sup.phase.clone(),
        store: store.clone(),
        recordings: rec_store.clone(),
        key: device_key.clone(),
        presets,
        camera: config.video.source.clone(),
        button: (!matches!(config.button.input, crate::config::ButtonInput::None))
            .then(|| button.test.clone()),
        display: (!matches!(config.display.sink, crate::config::DisplaySink::None))
            .then_some(test_pattern),
        speaker: (!matches!(config.speaker, crate::config::SpeakerSink::None)).then_some(test_tone),
        upload: upload_retry,
        media: Some(media.clone()),
        screen: (!matches!(config.display.sink, crate::config::DisplaySink::None))
            .then_some(screen),
        video: Some(config.video.clone()),
        archive: config.archive.clone(),
        recipients: config.recording.recipients.clone(),
        secret_values: config.secret_values(),
        schedule: Some(schedule.clone()),
        config_path: config.path.clone(),
        site_id: config.site.id.clone(),
        language: config.daemon.language,
        allow_reboot: config.mqtt.as_ref().is_some_and(|m| m.allow_reboot),
        restart: restart.clone(),
    });
    // The NOC control plane (None when [mqtt] url is empty).
    let mqtt = mqtt::spawn(mqtt::Deps {
        config: config.clone(),
        control: control.clone(),
        phase: sup.phase.clone(),
        outbox: outbox.clone(),
        store,
        device_key: recorder::keys::id(&device_key),
        schedule: schedule.clone(),
    })?;
    let socket = config.daemon.socket.clone();
    let listener = api::server::bind(&socket, config.daemon.socket_mode).await?;
    let server = tokio::spawn(api::server::serve(listener, control));

    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;

    tracing::info!(
        site = %config.site.id,
        socket = %socket.display(),
        "diemcau {} serving",
        env!("CARGO_PKG_VERSION")
    );
    systemd::ready();
    systemd::status("Ready — no session");
    {
        // Every recording the archive has not confirmed, against its
        // hashes: after READY, since a large backlog takes minutes. It
        // reads and hashes the whole backlog (a gigabyte is seconds of a
        // core and of the disk), so it waits while a session is live, as
        // the upload does: the encoder and the recording come first.
        let (store, outbox, stop) = (rec_store.clone(), outbox.clone(), stopping.clone());
        let phase = sup.phase.clone();
        tokio::task::spawn_blocking(move || {
            let t0 = std::time::Instant::now();
            let stop_or_wait = || {
                while *phase.borrow() == crate::core::session::Phase::Live && !stop.is_set() {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                stop.is_set()
            };
            match recorder::check_held(&store, &outbox, chrono::Utc::now(), &stop_or_wait) {
                Ok(q) => tracing::info!(
                    quarantined = q.len(),
                    seconds = t0.elapsed().as_secs_f64(),
                    "recordings on the box checked against their hashes"
                ),
                Err(e) => tracing::error!("recordings not checked against their hashes: {e}"),
            }
        });
    }
    if let Some(interval) = systemd::watchdog_interval() {
        tokio::spawn(systemd::watchdog(interval, sup.healthy.clone()));
    }

    let exit = tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); Exit::Stopped }
        _ = int.recv() => { tracing::info!("SIGINT: shutting down"); Exit::Stopped }
        _ = restart.requested() => { tracing::info!("restarting to apply a new configuration"); Exit::Restart }
    };
    match exit {
        Exit::Restart => systemd::reloading(),
        Exit::Stopped => systemd::stopping(),
    }
    // In this order, each awaited for a bounded time (docs/ARCHITECTURE.md,
    // "Shutdown"). No new commands: the socket closes first.
    server.abort();
    let _ = server.await;
    // The session ends: media stops, the recorder closes and syncs the
    // recording, the session record is written.
    sup.handle.shutdown().await;
    shutdown.trigger();
    // The uploader finishes the PUT in hand (its confirmation is written)
    // and returns; what is left uploads at the next start.
    if let Some(task) = uploader {
        if tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .is_err()
        {
            tracing::warn!("archive upload still busy at shutdown; it resumes at the next start");
        }
    }
    // The call is hung up with the session; the actor lets its
    // registration lapse and returns.
    if let Some(task) = sip {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    // Stopped with the others; its memory is in the store already.
    let _ = tokio::time::timeout(Duration::from_secs(1), schedule_task).await;
    // After the session closed, so its last events can still go out; then
    // `offline`, so the NOC sees a clean stop rather than `lost`.
    if let Some((handle, task)) = mqtt {
        handle.shutdown(Duration::from_secs(4)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    // The session is closed: the light goes out, the button lets go, the
    // screen's pipelines are set to Null as the display actor is dropped.
    button.task.abort();
    let _ = button.task.await;
    led.shutdown().await;
    display.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), display).await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    Ok(exit)
}
