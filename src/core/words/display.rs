//! The commune staff's words: what the room's screen says in each phase,
//! the mark for the link to the hub, the button's "hold to end" hint, the
//! technician's test pattern, and the slate burnt into the picture the hub
//! and the recording see while the camera is lost.

use super::Language;
use crate::core::status::LinkQuality;

/// Idle: the commune's name, what the room is, what to do.
pub fn idle(lang: Language, site: &str) -> String {
    match lang {
        Language::Vi => format!(
            "{site}\nĐIỂM CẦU TIẾP CÔNG DÂN TRỰC TUYẾN\n\nSẵn sàng — nhấn nút để bắt đầu phiên"
        ),
        Language::En => {
            format!("{site}\nONLINE CITIZEN RECEPTION\n\nReady — press the button to start")
        }
    }
}

/// An incoming conference call waits for the button (`answer = "button"`).
pub fn ringing(lang: Language) -> &'static str {
    lang.pick(
        "CUỘC GỌI TỪ ĐIỂM CẦU TỈNH\n\nNhấn nút để nhận và bắt đầu phiên",
        "CALL FROM THE PROVINCIAL CONFERENCE\n\nPress the button to answer and start the session",
    )
}

pub fn starting(lang: Language) -> &'static str {
    lang.pick("Đang bắt đầu phiên…", "Starting the session…")
}

pub fn stopping(lang: Language) -> &'static str {
    lang.pick("Đang kết thúc phiên…", "Ending the session…")
}

/// Fault: call a technician, and why (the daemon's own words, in English).
pub fn fault(lang: Language, why: &str) -> String {
    match lang {
        Language::Vi => format!("LỖI — hãy gọi kỹ thuật viên\n{why}"),
        Language::En => format!("FAULT — call a technician\n{why}"),
    }
}

/// At the foot of the screen whenever the camera may be on (idle, live):
/// people are told the room is recorded. A province may word it itself
/// (`[display] recording_notice`).
pub fn recording_notice(lang: Language) -> &'static str {
    lang.pick(
        "Buổi tiếp công dân được ghi âm, ghi hình theo quy định của pháp luật",
        "Citizen reception sessions are recorded (sound and picture) as the law requires",
    )
}

/// The banner's first words while live.
pub fn recording(lang: Language) -> &'static str {
    lang.pick("● ĐANG GHI HÌNH", "● RECORDING")
}

/// The banner's mark for the link to the hub; none when there is no hub.
pub fn link(lang: Language, q: LinkQuality) -> Option<&'static str> {
    match q {
        LinkQuality::Good => Some(lang.pick("Tín hiệu: tốt", "Link: good")),
        LinkQuality::Weak => Some(lang.pick("Tín hiệu: yếu", "Link: weak")),
        LinkQuality::Lost => Some(lang.pick(
            "Tín hiệu: mất — đang kết nối lại",
            "Link: lost — reconnecting",
        )),
        LinkQuality::NotConfigured => None,
    }
}

/// Live, and the hub's picture stopped coming.
pub fn feed_lost(lang: Language) -> &'static str {
    lang.pick(
        "MẤT KẾT NỐI\nvới điểm cầu tỉnh — đang kết nối lại…\nPhiên vẫn đang được ghi hình",
        "CONNECTION LOST\nto the provincial hub — reconnecting…\nThe session is still being recorded",
    )
}

/// Live without a return feed configured: nothing from the hub to show.
pub fn in_progress(lang: Language, site: &str) -> String {
    match lang {
        Language::Vi => format!("{site}\nĐang tiếp công dân trực tuyến"),
        Language::En => format!("{site}\nOnline reception in progress"),
    }
}

/// Over the technician's colour bars, so nobody takes them for a fault.
pub fn test_pattern(lang: Language) -> &'static str {
    lang.pick(
        "MÀN HÌNH THỬ\nThấy các sọc màu là màn hình hoạt động tốt",
        "DISPLAY TEST\nColour bars mean the screen works",
    )
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
        // Vietnamese writes a decimal comma.
        Language::Vi => format!("Giữ nút {} giây để kết thúc", secs.replace('.', ",")),
        Language::En => format!("Hold the button {secs} s to end"),
    }
}

/// The weekday's name, 1 Monday to 7 Sunday.
fn weekday(lang: Language, d: u8) -> &'static str {
    const VI: [&str; 7] = [
        "Thứ Hai",
        "Thứ Ba",
        "Thứ Tư",
        "Thứ Năm",
        "Thứ Sáu",
        "Thứ Bảy",
        "Chủ Nhật",
    ];
    const EN: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let i = usize::from(d.clamp(1, 7) - 1);
    lang.pick(VI[i], EN[i])
}

/// The standby screen's line about the next scheduled session, from its
/// local start (`2026-12-03T08:00`): its day and time, and in the last ten
/// minutes a countdown.
pub fn next_session(lang: Language, weekday_no: u8, local_start: &str, starts_in_s: i64) -> String {
    if (0..600).contains(&starts_in_s) {
        let (m, s) = (starts_in_s / 60, starts_in_s % 60);
        return match lang {
            Language::Vi => format!("Phiên tiếp theo bắt đầu sau {m}:{s:02}"),
            Language::En => format!("The next session starts in {m}:{s:02}"),
        };
    }
    let (date, time) = local_start.split_once('T').unwrap_or((local_start, ""));
    let mut ymd = date.split('-');
    let (_, month, day) = (
        ymd.next(),
        ymd.next().unwrap_or(""),
        ymd.next().unwrap_or(""),
    );
    let when = format!("{} {day}/{month}, {time}", weekday(lang, weekday_no));
    match lang {
        Language::Vi => format!("Phiên tiếp theo: {when}"),
        Language::En => format!("Next session: {when}"),
    }
}

/// The warning before a scheduled session's planned end.
pub fn ends_at(lang: Language, end: &str) -> String {
    match lang {
        Language::Vi => format!("Phiên sẽ kết thúc lúc {end} — nhấn nút để tiếp tục"),
        Language::En => format!("The session ends at {end} — press the button to continue"),
    }
}

/// After a press during the warning.
pub fn extended(lang: Language, end: &str) -> String {
    match lang {
        Language::Vi => format!("Phiên được kéo dài đến {end}"),
        Language::En => format!("The session goes on until {end}"),
    }
}

/// The slate over black in the encoded picture while the camera is lost:
/// the hub and the recording see it, so it says why there is no picture.
pub fn camera_lost_slate(lang: Language) -> &'static str {
    lang.pick("KHÔNG CÓ TÍN HIỆU CAMERA", "NO CAMERA SIGNAL")
}

#[cfg(test)]
mod tests {
    use super::super::tests::vietnamese;
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_words_other_tests_look_for() {
        use Language::*;
        assert_eq!(recording(Vi), "● ĐANG GHI HÌNH");
        assert!(feed_lost(Vi).starts_with("MẤT KẾT NỐI"));
        assert!(idle(Vi, "X").contains("Sẵn sàng"));
        assert!(fault(Vi, "").starts_with("LỖI — hãy gọi kỹ thuật viên"));
        assert_eq!(
            hold_to_end(Vi, Duration::from_secs(2)),
            "Giữ nút 2 giây để kết thúc"
        );
        assert_eq!(
            hold_to_end(En, Duration::from_millis(400)),
            "Hold the button 0.4 s to end"
        );
    }

    #[test]
    fn english_is_english() {
        let en = Language::En;
        let mut all = vec![
            idle(en, "X"),
            fault(en, ""),
            in_progress(en, "X"),
            hold_to_end(en, Duration::from_secs(2)),
        ];
        all.extend(
            [
                starting(en),
                stopping(en),
                recording(en),
                feed_lost(en),
                test_pattern(en),
                camera_lost_slate(en),
            ]
            .map(str::to_owned),
        );
        for q in [LinkQuality::Good, LinkQuality::Weak, LinkQuality::Lost] {
            all.extend(link(en, q).map(str::to_owned));
        }
        for t in all {
            assert!(!vietnamese(&t), "{t}");
        }
        assert!(vietnamese(camera_lost_slate(Language::Vi)));
    }
}
