//! The command line's words: the labels of the status report
//! (`diemcau status`, and the session line of `start` and `stop`), and the
//! page that explains a court bundle (`recordings export --bundle`).

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

/// What a court bundle's reader needs to know, for [`bundle_readme`].
pub struct BundleFacts<'a> {
    pub site: &'a str,
    pub session: &'a str,
    pub started: &'a str,
    pub ended: &'a str,
    pub segments: usize,
    pub far: bool,
    /// The media are sealed (format 2): opening them needs a recipient's
    /// identity; checking them does not.
    pub sealed: bool,
    pub fingerprint: &'a str,
    pub public_key: &'a str,
    pub made_at: &'a str,
    pub made_by: &'a str,
}

/// `DOC-TOI.txt`, the one page at the top of a court bundle: in
/// Vietnamese, for a clerk or an inspector, with the commands to check it.
pub fn bundle_readme(f: &BundleFacts) -> String {
    let far = if f.far {
        "\r\n  ban-ghi/far/         lời của điểm cầu bên kia (tiếng), chuỗi băm riêng"
    } else {
        ""
    };
    format!(
        "BẢN GHI PHIÊN TIẾP CÔNG DÂN TRỰC TUYẾN — BỘ HỒ SƠ TỰ KIỂM CHỨNG\r\n\
         \r\n\
         Điểm cầu: {site}\r\n\
         Phiên: {session}\r\n\
         Bắt đầu: {started}   Kết thúc: {ended}\r\n\
         Số đoạn ghi: {segments}\r\n\
         Lập lúc: {made_at}, bởi: {made_by}\r\n\
         \r\n\
         TRONG THƯ MỤC NÀY\r\n\
         \x20 ban-ghi/             các đoạn ghi (000000.ts …) và manifest.json đã ký{far}\r\n\
         \x20 verify-recording.py  chương trình kiểm chứng (Python 3 + cryptography)\r\n\
         \x20 RECORDING-FORMAT.md  mô tả định dạng, đủ để viết chương trình kiểm chứng khác\r\n\
         \r\n\
         KHOÁ KÝ CỦA HỘP\r\n\
         \x20 Vân tay: {fingerprint}\r\n\
         \x20 Khoá công khai: {public_key}\r\n\
         \x20 Đối chiếu vân tay này với biên bản lắp đặt của điểm cầu (hoặc tệp khoá\r\n\
         \x20 của tỉnh). Chữ ký chỉ chứng minh được khi khoá là khoá đã đăng ký.\r\n\
         \r\n\
         CÁCH KIỂM CHỨNG\r\n\
         \x20 python3 verify-recording.py ban-ghi --key {public_key}\r\n\
         \x20 (hoặc --keys TỆP-KHOÁ-CỦA-TỈNH.json)\r\n\
         \x20 Kết quả: INTACT (mã 0) = nguyên vẹn; TAMPERED (mã 3) = đã bị sửa hoặc không\r\n\
         \x20 do hộp này ký; INCOMPLETE (mã 4) = thiếu đoạn ghi.\r\n\
         \r\n\
         XEM BẢN GHI\r\n\
         {view}\
         \x20 Bản lưu ở kho của tỉnh có thêm manifest.tsr (dấu thời gian RFC 3161)\r\n\
         \x20 nếu tỉnh dùng dịch vụ cấp dấu thời gian.\r\n",
        view = if f.sealed {
            "\x20 Bản ghi đã được MÃ HOÁ: kiểm chứng như trên không cần khoá, nhưng chỉ người\r\n\
             \x20 giữ khoá riêng của tỉnh mở xem được (cần chương trình age):\r\n\
             \x20 python3 verify-recording.py ban-ghi --out ban-ghi.ts --identity TỆP-KHOÁ-RIÊNG\r\n"
        } else {
            "\x20 Nối các tệp .ts theo thứ tự là được toàn bộ bản ghi; VLC hoặc ffmpeg mở được\r\n\
             \x20 từng tệp.\r\n"
        },
        site = f.site,
        session = f.session,
        started = f.started,
        ended = f.ended,
        segments = f.segments,
        made_at = f.made_at,
        made_by = f.made_by,
        fingerprint = f.fingerprint,
        public_key = f.public_key,
    )
}
