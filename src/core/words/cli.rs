//! The command line's words: the labels of the status report
//! (`diemcau status`, and the session line of `start` and `stop`).

use super::Language;

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
