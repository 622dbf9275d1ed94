//! Words shown to people: commune staff (display), technicians (CLI). Vietnamese
//! by default, English on request. Logs and MQTT stay in English for the NOC.

use super::session::{Degradation, Outcome, Phase};

/// The language of the words a person reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Vi,
    En,
}

impl Language {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "vi" => Some(Self::Vi),
            "en" => Some(Self::En),
            _ => None,
        }
    }
}

pub fn phase(lang: Language, p: Phase) -> &'static str {
    use Language::*;
    use Phase::*;
    match (lang, p) {
        (Vi, Idle) => "Sẵn sàng — chưa có phiên tiếp công dân",
        (Vi, Starting) => "Đang bắt đầu phiên…",
        (Vi, Live) => "Đang tiếp công dân trực tuyến — đang ghi hình",
        (Vi, Stopping) => "Đang kết thúc phiên…",
        (Vi, Fault) => "Lỗi — hãy gọi kỹ thuật viên",
        (En, Idle) => "Ready — no session",
        (En, Starting) => "Starting a session…",
        (En, Live) => "Live — recording",
        (En, Stopping) => "Ending the session…",
        (En, Fault) => "Fault — call a technician",
    }
}

pub fn degradation(lang: Language, d: Degradation) -> &'static str {
    use Degradation::*;
    use Language::*;
    match (lang, d) {
        (Vi, CameraLost) => "mất tín hiệu camera",
        (Vi, MicrophoneLost) => "mất micrô",
        (Vi, UplinkDown) => "mất kết nối lên điểm cầu tỉnh (đang thử lại)",
        (Vi, ReturnFeedLost) => "mất hình từ điểm cầu tỉnh",
        (Vi, RecordingHalted) => "ghi hình bị gián đoạn",
        (En, CameraLost) => "camera lost",
        (En, MicrophoneLost) => "microphone lost",
        (En, UplinkDown) => "uplink to the hub down (retrying)",
        (En, ReturnFeedLost) => "return feed from the hub lost",
        (En, RecordingHalted) => "recording halted",
    }
}

pub fn outcome(lang: Language, o: Option<&Outcome>) -> String {
    use Language::*;
    match (lang, o) {
        (Vi, None) => "đang diễn ra".into(),
        (Vi, Some(Outcome::Ended)) => "kết thúc bình thường".into(),
        (Vi, Some(Outcome::Interrupted(_))) => "bị gián đoạn (mất điện hoặc lỗi phần mềm)".into(),
        (Vi, Some(Outcome::Failed(r))) => format!("lỗi: {r}"),
        (En, None) => "running".into(),
        (En, Some(Outcome::Ended)) => "ended cleanly".into(),
        (En, Some(Outcome::Interrupted(_))) => "interrupted (power cut or crash)".into(),
        (En, Some(Outcome::Failed(r))) => format!("failed: {r}"),
    }
}

/// Labels for the status report, in order of appearance.
pub struct Labels {
    pub site: &'static str,
    pub state: &'static str,
    pub session: &'static str,
    pub since: &'static str,
    pub problems: &'static str,
    pub last: &'static str,
    pub uplink: &'static str,
    pub connected: &'static str,
    pub disconnected: &'static str,
    pub not_configured: &'static str,
}

pub fn labels(lang: Language) -> Labels {
    match lang {
        Language::Vi => Labels {
            site: "Điểm cầu",
            state: "Trạng thái",
            session: "Phiên",
            since: "bắt đầu lúc",
            problems: "Sự cố",
            last: "Phiên trước",
            uplink: "Đường truyền lên tỉnh",
            connected: "đã kết nối",
            disconnected: "chưa kết nối",
            not_configured: "chưa cấu hình",
        },
        Language::En => Labels {
            site: "Site",
            state: "State",
            session: "Session",
            since: "started at",
            problems: "Problems",
            last: "Last session",
            uplink: "Uplink to the hub",
            connected: "connected",
            disconnected: "not connected",
            not_configured: "not configured",
        },
    }
}

/// The button's hint while live: how long to hold it to end the session.
pub fn hold_to_end(lang: Language, hold: std::time::Duration) -> String {
    let s = hold.as_secs_f64();
    let secs = if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    };
    match lang {
        Language::Vi => format!("Giữ nút {} giây để kết thúc", secs.replace('.', ",")),
        Language::En => format!("Hold the button {secs} s to end"),
    }
}
