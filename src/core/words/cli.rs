//! The command line's words: the labels of the status report
//! (`diemcau status`, and the session line of `start` and `stop`).

use super::Language;

/// Asked at a terminal before an action the audit trail records (both
/// languages: the CLI does not know the reader's yet).
pub const ASK_OPERATOR: &str =
    "Họ tên người thực hiện (ghi vào nhật ký kiểm soát) / Your name (for the audit trail): ";

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

/// The SRT latency in use and why, for the status report's uplink line.
pub fn latency(lang: Language, ms: u32, why: crate::core::status::LatencyWhy) -> String {
    use crate::core::status::LatencyWhy as W;
    match lang {
        Language::Vi => format!(
            "độ trễ SRT {ms} ms ({})",
            match why {
                W::Configured => "theo cấu hình",
                W::FourRtt => "nâng lên 4 lần RTT của đường truyền",
                W::Ceiling => "giữ ở mức trần latency_max_ms",
            }
        ),
        Language::En => format!(
            "SRT latency {ms} ms ({})",
            match why {
                W::Configured => "as configured",
                W::FourRtt => "raised to 4 × the link's RTT",
                W::Ceiling => "held at latency_max_ms",
            }
        ),
    }
}
