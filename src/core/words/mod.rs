//! Every word a person reads in the language they asked for, in one place
//! and both languages: Vietnamese by default, English on request. What is
//! only ever English stays with its code: logs, MQTT and the socket's error
//! messages (for the NOC), the NOC's `fleet` commands, and the command
//! line's technical output (`config check`, `recordings`, `camera`,
//! argument errors).
//!
//! One mechanism: a function takes the [`Language`] (and the values the
//! text holds) and returns the text. Fixed texts of one audience are a
//! table written with `words!`: an enum naming what is said, each entry
//! with its Vietnamese and English side by side, and one function from
//! language and entry to text. Nothing outside `core` spells out one of
//! these texts in either language; a test (`tests/layering.rs`) fails on a
//! Vietnamese letter in a string literal anywhere else.
//!
//! By audience:
//! - this file: what several of them read: the session's phase, its
//!   problems, a session's outcome;
//! - `display.rs`: the commune staff: the room's screen, the button's hint,
//!   and the slate in the picture the hub and the recording see when the
//!   camera is lost;
//! - `doctor.rs`: the technician running the self-test;
//! - `provision.rs`: the technician with the setup partition: what the box
//!   says about a site file it took in or refused (`provision.json`,
//!   `KET-QUA.txt`, the screen);
//! - `cli.rs`: the status report of the command line.

use super::session::{Degradation, Outcome, Phase};

/// A table of fixed texts: an enum of what is said, its list of entries
/// (`ALL`, for tests), and a function from language and entry to the text.
/// Each entry is written `Name => ("tiếng Việt", "English"),`. For the
/// files of this module only (it names `super::Language`).
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, fn $text:ident {
            $($(#[$vmeta:meta])* $variant:ident => ($vi:expr, $en:expr $(,)?),)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every entry of the table, for the tests that read them all.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
        }

        /// The text of `t` in `lang`.
        pub fn $text(lang: super::Language, t: $name) -> &'static str {
            match t {
                $($name::$variant => lang.pick($vi, $en),)*
            }
        }
    };
}

pub mod cli;
pub mod display;
pub mod doctor;
pub mod provision;

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

    /// One of a pair written side by side. Private to the words (this
    /// module and its files), so that the rest of the daemon asks for a
    /// text by name instead of holding a pair of its own.
    fn pick<T>(self, vi: T, en: T) -> T {
        match self {
            Self::Vi => vi,
            Self::En => en,
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
        (Vi, CallDown) => "mất cuộc gọi với điểm cầu tỉnh (đang gọi lại)",
        (En, CameraLost) => "camera lost",
        (En, MicrophoneLost) => "microphone lost",
        (En, UplinkDown) => "uplink to the hub down (retrying)",
        (En, ReturnFeedLost) => "return feed from the hub lost",
        (En, RecordingHalted) => "recording halted",
        (En, CallDown) => "call to the provincial conference down (redialling)",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `s` holds a letter only Vietnamese writes (the English texts
    /// must not: a swapped pair shows up here).
    pub(super) fn vietnamese(s: &str) -> bool {
        const LETTERS: &str = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ";
        s.chars()
            .flat_map(char::to_lowercase)
            .any(|c| LETTERS.contains(c))
    }

    #[test]
    fn the_shared_words_are_in_their_language() {
        use Degradation::*;
        use Phase::*;
        for p in [Idle, Starting, Live, Stopping, Fault] {
            assert!(vietnamese(phase(Language::Vi, p)), "{p:?}");
            assert!(!vietnamese(phase(Language::En, p)), "{p:?}");
        }
        for d in [
            CameraLost,
            MicrophoneLost,
            UplinkDown,
            ReturnFeedLost,
            RecordingHalted,
            CallDown,
        ] {
            assert!(vietnamese(degradation(Language::Vi, d)), "{d:?}");
            assert!(!vietnamese(degradation(Language::En, d)), "{d:?}");
        }
    }
}
