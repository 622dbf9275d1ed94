//! Samples of the machine for `health`: CPU, memory, temperature, disk,
//! clock sync, read from /proc, /sys and two system calls. Cheap enough to
//! run every second; errors give zeros or leave a field out, never a panic.

use std::path::Path;

use super::payload::Health;
use crate::core::status::Status;

/// Keeps the previous CPU counters to turn totals into a percentage.
#[derive(Debug, Default)]
pub struct Sampler {
    prev_cpu: Option<(u64, u64)>,
}

impl Sampler {
    /// One sample; `state_dir` is the disk that matters (the recordings).
    pub fn sample(
        &mut self,
        status: &Status,
        state_dir: &Path,
        event_backlog: u64,
        mqtt_connects: u64,
    ) -> Health {
        let m = &status.media;
        let clock = crate::util::clock();
        let up = &m.uplink;
        let (mem_used_percent, mem_available_mb) = memory();
        let (disk_used_percent, disk_free_mb) = disk(state_dir);
        Health {
            ts: chrono::Utc::now().timestamp(),
            uptime_s: status.uptime_s,
            cpu_percent: self.cpu_percent(),
            load1: load1(),
            mem_used_percent,
            mem_available_mb,
            daemon_rss_kb: rss_kb(),
            temperature_c: temperature_c(),
            disk_used_percent,
            disk_free_mb,
            session_live: u8::from(status.phase == crate::core::session::Phase::Live),
            degraded_count: status.degraded.len() as u64,
            camera_present: u8::from(m.camera_present),
            microphone_present: u8::from(m.microphone_present),
            mic_peak_dbfs: m.mic_peak_dbfs,
            mic_rms_dbfs: m.mic_rms_dbfs,
            srt_connected: u8::from(up.connected),
            srt_rtt_ms: up.rtt_ms,
            srt_packets_lost: up.packets_lost,
            srt_packets_retransmitted: up.packets_retransmitted,
            srt_bitrate_kbps: up.bitrate_kbps.into(),
            srt_send_rate_mbps: up.send_rate_mbps,
            srt_connects: up.connects,
            upload_backlog_segments: status.upload.backlog_segments,
            upload_oldest_unconfirmed_s: status.upload.oldest_unconfirmed_age_s,
            event_backlog,
            mqtt_connects,
            time_synced: u8::from(clock.synchronized),
            clock_offset_ms: clock.offset_ms.unwrap_or(0),
            clock_max_error_ms: clock.max_error_ms.unwrap_or(0),
        }
    }

    fn cpu_percent(&mut self) -> f64 {
        let Some((idle, total)) = cpu_counters() else {
            return 0.0;
        };
        let pct = match self.prev_cpu {
            Some((pi, pt)) if total > pt => {
                let busy = (total - pt).saturating_sub(idle.saturating_sub(pi));
                100.0 * busy as f64 / (total - pt) as f64
            }
            _ => 0.0,
        };
        self.prev_cpu = Some((idle, total));
        pct
    }
}

fn cpu_counters() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((idle, v.iter().take(8).sum()))
}

fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn memory() -> (f64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    match (
        meminfo_kb(&text, "MemTotal:"),
        meminfo_kb(&text, "MemAvailable:"),
    ) {
        (Some(t), Some(a)) if t > 0 => (100.0 * (t.saturating_sub(a)) as f64 / t as f64, a / 1024),
        _ => (0.0, 0),
    }
}

fn rss_kb() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    meminfo_kb(&text, "VmRSS:").unwrap_or(0)
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The hottest thermal zone, °C; `None` on machines without sensors.
fn temperature_c() -> Option<f64> {
    let dir = std::fs::read_dir("/sys/class/thermal").ok()?;
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|t| t.trim().parse::<f64>().ok())
        .map(|milli| milli / 1000.0)
        .reduce(f64::max)
}

fn disk(path: &Path) -> (f64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (0.0, 0);
    };
    // SAFETY: statvfs writes only into the zeroed struct we pass; the path
    // is a valid NUL-terminated string that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 || st.f_blocks == 0 {
        return (0.0, 0);
    }
    let frsize = st.f_frsize as f64;
    let total = st.f_blocks as f64 * frsize;
    let avail = st.f_bavail as f64 * frsize;
    let free = st.f_bfree as f64 * frsize;
    (100.0 * (total - free) / total, (avail / 1_048_576.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_machine() {
        let mut s = Sampler::default();
        let status: Status = serde_json::from_value(serde_json::json!({
            "version": "0", "site_id": "xa", "site_name": "x", "phase": "idle", "fault": null,
            "session": null, "degraded": [], "last_session": null, "uptime_s": 3,
            "media": crate::core::status::MediaStats::default(),
        }))
        .unwrap();
        let _ = s.sample(&status, Path::new("/"), 0, 0);
        let h = s.sample(&status, Path::new("/"), 2, 1);
        assert!((0.0..=100.0).contains(&h.cpu_percent));
        assert!(h.mem_used_percent > 0.0 && h.disk_used_percent > 0.0);
        assert!(h.daemon_rss_kb > 0);
        assert_eq!(h.event_backlog, 2);
        // Flat: every value is a number.
        let v = serde_json::to_value(&h).unwrap();
        assert!(
            v.as_object().unwrap().values().all(|x| x.is_number()),
            "{v}"
        );
    }
}
