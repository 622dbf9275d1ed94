//! The technician's words in `diemcau doctor`: each check's name, what it
//! found, what to do about a failure, the prompts while a check waits on
//! the technician, and the tally.
//!
//! The fixed texts are four tables (`Name`, `Finding`, `Advice`, `Prompt`);
//! what a check found with values in it (a path, a level, an address) is a
//! function of those values.

use super::Language;

words! {
    /// The checks, as the report names them.
    pub enum Name, fn name {
        Config => ("Cấu hình", "Configuration"),
        SiteFile => ("Tệp site.toml (ổ DIEMCAU)", "site.toml (DIEMCAU partition)"),
        Daemon => ("Phần mềm diemcau", "diemcau daemon"),
        Camera => ("Camera", "Camera"),
        Encoder => ("Bộ mã hoá hình", "Video encoder"),
        Microphone => ("Micrô", "Microphone"),
        Speaker => ("Loa", "Speaker"),
        Display => ("Màn hình", "Display"),
        Button => ("Nút bấm", "Button"),
        Led => ("Đèn báo", "Tally light"),
        Network => ("Mạng", "Network"),
        TimeSync => ("Đồng bộ giờ", "Time sync"),
        Broker => ("Máy chủ MQTT (NOC)", "MQTT broker (NOC)"),
        Hub => ("Điểm cầu tỉnh (SRT)", "Provincial hub (SRT)"),
        Conference => ("Hội nghị truyền hình (SIP)", "Video conference (SIP)"),
        Archive => ("Kho lưu trữ (S3)", "Archive (S3)"),
        Storage => ("Bộ nhớ ghi hình", "Recording storage"),
        SetAside => ("Dữ liệu sau mất điện", "Data after a power cut"),
        DeviceKey => ("Khoá ký biên bản của hộp", "The box's recording key"),
        TimeStamp => ("Dấu thời gian (RFC 3161)", "Time stamps (RFC 3161)"),
        Sealing => ("Mã hoá bản ghi", "Encryption at rest"),
        StateFormat => ("Định dạng dữ liệu trên hộp", "Format of the box's data"),
    }
}

words! {
    /// What a check found, when it holds no value.
    pub enum Finding, fn finding {
        NotRunning => ("không chạy", "not running"),
        NotConfigured => ("không cấu hình", "not configured"),
        SyntheticSource => ("nguồn giả lập", "synthetic source"),
        NoUsableFormat => ("không có định dạng phù hợp", "no usable format"),
        NoSoundCard => ("không có card âm thanh nào", "no sound card"),
        LiveNoTone => (
            "đang trong phiên: không phát tiếng thử",
            "a session is live: no test tone",
        ),
        NoDisplay => ("không có màn hình nào được kết nối", "no display connected"),
        DaemonDownNoPattern => (
            "phần mềm không chạy: không hiện mẫu thử",
            "the daemon is not running: no test pattern",
        ),
        LiveNoPattern => (
            "đang trong phiên: không hiện mẫu thử",
            "a session is running: no test pattern",
        ),
        PatternShown => (
            "đã hiện mẫu thử (sọc màu) 8 giây; không thấy thì kiểm tra cáp HDMI và nguồn vào của TV",
            "test pattern (colour bars) shown for 8 s; if nobody saw it, check the HDMI cable and the TV's input",
        ),
        DefaultRoute => ("có đường ra mạng (default route)", "default route present"),
        NoDefaultRoute => ("không có đường ra mạng", "no default route"),
        ClockSynced => ("đồng hồ đã đồng bộ (NTP)", "clock synchronised (NTP)"),
        ClockNotSynced => ("đồng hồ chưa đồng bộ", "clock not synchronised"),
        DaemonNotRunning => ("phần mềm không chạy", "daemon not running"),
    }
}

words! {
    /// What to do about a failed check.
    pub enum Advice, fn advice {
        FixConfig => (
            "Sửa dòng được chỉ ra trong site.toml/config.toml rồi chạy lại diemcau doctor",
            "Fix the line named above, then run diemcau doctor again",
        ),
        FixSiteFile => (
            "Cắm ổ của hộp vào máy tính, mở ổ DIEMCAU, sửa site.toml theo KET-QUA.txt, rồi khởi động lại hộp",
            "Open the DIEMCAU partition on a laptop, fix site.toml as KET-QUA.txt says, and restart the box",
        ),
        RestartDaemon => (
            "Chạy: systemctl restart diemcau; xem lỗi: journalctl -u diemcau",
            "Run: systemctl restart diemcau; see why: journalctl -u diemcau",
        ),
        NewerState => (
            "Không xoá dữ liệu (có bản ghi hình); cài lại phiên bản mới hơn đã ghi dữ liệu này, hoặc báo tỉnh",
            "Do not delete the data (it holds recordings); install the newer version that wrote it again, or tell the province",
        ),
        StoreSetAside => (
            "Báo tỉnh; chỉ xoá thư mục này khi tỉnh đồng ý",
            "Tell the province; delete the folder only when they agree",
        ),
        CameraTestSource => (
            "Cấu hình dùng nguồn thử; đặt [video] source = \"v4l2\" khi có camera",
            "The configuration uses a test source",
        ),
        ReplugCamera => (
            "Cắm lại cáp USB của camera (hoặc đổi cổng), đợi 5 giây rồi chạy lại",
            "Re-plug the camera's USB cable (or try another port), wait 5 s, run again",
        ),
        CameraNoPicture => (
            "Camera có nhưng không cho hình: rút ra cắm lại; nếu vẫn lỗi, thử camera khác",
            "The camera is there but gives no picture: re-plug it; if it persists, try another camera",
        ),
        PlugSoundCard => (
            "Cắm micrô/loa hội nghị USB rồi chạy lại",
            "Plug in the USB microphone or speakerphone, run again",
        ),
        MicTooQuiet => (
            "Kiểm tra micrô có bị tắt tiếng (mute) không, và âm lượng thu (gain_percent)",
            "Check the microphone is not muted, and the capture gain (gain_percent)",
        ),
        MicDevice => (
            "Thiết bị ALSA sai hoặc đang bận; xem [audio] device, hoặc cắm lại micrô",
            "Wrong or busy ALSA device; check [audio] device, or re-plug the microphone",
        ),
        SpeakerDevice => (
            "Kiểm tra loa đã cắm và [speaker] device trong site.toml",
            "Check that the speaker is plugged in and [speaker] device in site.toml",
        ),
        HdmiCable => (
            "Kiểm tra cáp HDMI và bật màn hình/TV",
            "Check the HDMI cable and that the screen is on",
        ),
        ButtonNoPress => (
            "Kiểm tra dây nút bấm (hoặc cắm lại nút USB); phím nút gửi phải đúng [button] key",
            "Check the button's wiring (or re-plug the USB button); the key it sends must be [button] key",
        ),
        ReplugButton => ("Cắm lại nút bấm USB", "Re-plug the USB button"),
        ButtonGpio => (
            "Kiểm tra chip GPIO trong cấu hình (xem hw/WIRING.md)",
            "Check the GPIO chip in the configuration (see hw/WIRING.md)",
        ),
        LedName => (
            "Tên đèn trong /sys/class/leds không đúng",
            "Wrong LED name under /sys/class/leds",
        ),
        LedGpio => ("Kiểm tra chip GPIO của đèn", "Check the LED's GPIO chip"),
        NetworkCable => (
            "Kiểm tra cáp mạng / modem, và cấu hình địa chỉ IP",
            "Check the network cable or modem, and the IP settings",
        ),
        TimeSync => (
            "Giờ ghi trong biên bản và giờ bắt đầu các phiên theo lịch có thể sai (hộp vẫn chạy lịch theo đồng hồ của nó): kiểm tra mạng và dịch vụ systemd-timesyncd",
            "Recording times, and when scheduled sessions start, may be wrong (the box still runs its schedule by its own clock): check the network and systemd-timesyncd",
        ),
        CopyDeviceCert => (
            "Chép chứng chỉ của thiết bị vào phân vùng cấu hình",
            "Copy the device certificate onto the provisioning partition",
        ),
        BrokerCertificates => (
            "Chứng chỉ không khớp: chép đúng ca.pem, box.pem, box.key của tỉnh vào thư mục certs trên ổ DIEMCAU, kiểm tra giờ hệ thống",
            "Certificates do not match: copy the province's ca.pem, box.pem and box.key into certs on the DIEMCAU partition; check the clock",
        ),
        BrokerUnreachable => (
            "Không tới được máy chủ NOC: kiểm tra mạng, tường lửa, địa chỉ trong [mqtt] url",
            "Broker unreachable: check the network, firewall, and [mqtt] url",
        ),
        HubLinkDown => (
            "Kiểm tra mạng và báo điểm cầu tỉnh",
            "Check the network and call the provincial hub",
        ),
        HubDns => (
            "Tên máy điểm cầu tỉnh không phân giải được: kiểm tra DNS và [uplink] url",
            "The hub's name does not resolve: check DNS and [uplink] url",
        ),
        SipRegister => (
            "Máy chủ SIP không nhận đăng ký: kiểm tra user, password và registrar trong [sip] (site.toml)",
            "The SIP server refuses the registration: check user, password and registrar in [sip] (site.toml)",
        ),
        SipCertificate => (
            "Chứng chỉ TLS của máy chủ SIP không được tin cậy: kiểm tra [sip] ca (chứng chỉ của đơn vị cấp) và tên máy chủ",
            "The SIP server's TLS certificate is not trusted: check [sip] ca (the issuing authority's certificate) and the server's name",
        ),
        SipUnanswered => (
            "Máy chủ SIP không trả lời: kiểm tra mạng, địa chỉ và cổng trong [sip] (registrar, proxy, conference, transport)",
            "The SIP server does not answer: check the network, and the address and port in [sip] (registrar, proxy, conference, transport)",
        ),
        SipCallDown => (
            "Cuộc gọi vào hội nghị chưa thành: xem lý do bên cạnh; kiểm tra số hội nghị (conference) và báo tỉnh",
            "The conference call is not up: see the reason beside; check [sip] conference and call the province",
        ),
        HubUnanswered => (
            "Không kết nối được điểm cầu tỉnh: kiểm tra mạng, địa chỉ và mật khẩu (passphrase) trong [uplink]",
            "The hub does not answer: check the network, and the address and passphrase in [uplink]",
        ),
        ArchiveEndpoint => ("Sửa [archive] endpoint", "Fix [archive] endpoint"),
        ArchiveWrite => (
            "Kho lưu trữ không ghi được: kiểm tra mạng, khóa truy cập và tên bucket trong [archive]",
            "Cannot write to the archive: check the network, the access key and the bucket in [archive]",
        ),
        TimeStampAuthority => (
            "Không lấy được dấu thời gian: kiểm tra mạng và [archive] timestamp_url; trong lúc đó biên bản chờ, không mất",
            "No time stamp: check the network and [archive] timestamp_url; meanwhile the manifests wait, nothing is lost",
        ),
        DeviceKeyMissing => (
            "Khoá được tạo khi phần mềm chạy lần đầu: chạy systemctl restart diemcau rồi chạy lại doctor; nếu hộp đã có khoá cũ, báo tỉnh (đổi khoá theo hướng dẫn)",
            "The key is made when the daemon first runs: run systemctl restart diemcau, then doctor again; if the box had a key before, tell the province (key rotation procedure)",
        ),
        StorageFull => (
            "Bộ nhớ gần đầy vì chưa gửi được lên kho: kiểm tra kết nối kho lưu trữ",
            "Nearly full of unarchived recordings: check the archive connection",
        ),
    }
}

words! {
    /// Said on the terminal while a check waits on the technician.
    pub enum Prompt, fn prompt {
        SpeakIntoMicrophone => (
            ">>> Hãy nói vào micrô trong 3 giây…",
            ">>> Speak into the microphone for 3 seconds…",
        ),
        ListenToBeep => (
            "Loa: phát tiếng bíp 2 giây — hãy nghe…",
            "Speaker: a 2-second beep — listen…",
        ),
        LookAtScreen => (
            "Màn hình: đang hiện các sọc màu 8 giây — hãy nhìn màn hình…",
            "Display: colour bars for 8 s — look at the screen…",
        ),
        PressButton => (
            "Nút bấm: hãy NHẤN NÚT ngay bây giờ (trong 10 giây; không bắt đầu phiên)…",
            "Button: PRESS THE BUTTON now (within 10 s; no session starts)…",
        ),
    }
}

/// The device key, as the installation report carries it to the province.
pub fn device_key(lang: Language, fingerprint: &str, public_key: &str) -> String {
    match lang {
        Language::Vi => format!(
            "vân tay {fingerprint} (khoá công khai {public_key}); ghi vân tay này vào biên bản lắp đặt gửi tỉnh"
        ),
        Language::En => format!(
            "fingerprint {fingerprint} (public key {public_key}); write this fingerprint into the installation report for the province"
        ),
    }
}

/// Recordings are sealed to these recipients (shortened for the screen).
pub fn sealed_to(lang: Language, recipients: &[String]) -> String {
    let short: Vec<String> = recipients
        .iter()
        .map(
            |r| match (r.get(..10), r.get(r.len().saturating_sub(6)..)) {
                (Some(head), Some(tail)) if r.len() > 20 => format!("{head}…{tail}"),
                _ => r.clone(),
            },
        )
        .collect();
    match lang {
        Language::Vi => format!(
            "bản ghi và ảnh chụp được mã hoá cho {} khoá nhận: {}; chỉ tỉnh (người giữ khoá riêng) mở được",
            recipients.len(),
            short.join(", ")
        ),
        Language::En => format!(
            "recordings and stills are sealed to {} recipients: {}; only the holders of their private keys open them",
            recipients.len(),
            short.join(", ")
        ),
    }
}

/// The time-stamping authority answered a test request.
pub fn time_stamped(lang: Language, url: &str, at: &str) -> String {
    match lang {
        Language::Vi => format!("{url} trả dấu thời gian hợp lệ ({at})"),
        Language::En => format!("{url} answered with a valid token ({at})"),
    }
}

/// The configuration file loaded.
pub fn config_valid(lang: Language, path: &str) -> String {
    format!("{path} {}", lang.pick("hợp lệ", "is valid"))
}

/// The daemon answered: its version and what it is doing.
pub fn daemon_running(lang: Language, version: &str, phase: &str) -> String {
    format!(
        "{} {version} — {phase}",
        lang.pick("đang chạy, phiên bản", "running, version")
    )
}

/// The store could not be reopened after a power cut and was set aside in
/// `folders`.
pub fn store_set_aside(lang: Language, folders: &str) -> String {
    let what = lang.pick(
        "kho dữ liệu không mở lại được nên đã cất riêng; bản ghi hình chưa lưu trữ đã được lấy lại từ nhật ký ghi hình, còn lịch sử phiên và sự kiện chưa gửi nằm trong thư mục cất riêng",
        "the store could not be reopened and was set aside; recordings not yet archived were brought back from their journal, the session history and undelivered events stay in the set-aside folder",
    );
    format!("{what}: {folders}")
}

/// The state directory's format, as `found` (this version reads `ours` at
/// most); `found` is `None` when it cannot be read (`said`).
pub fn state_format(lang: Language, found: Result<u32, &str>, ours: u32) -> String {
    match (found, lang) {
        (Ok(f), Language::Vi) if f > ours => format!(
            "dữ liệu ở định dạng {f}, do phiên bản mới hơn ghi; phiên bản này chỉ đọc đến định dạng {ours} nên không chạy và không sửa gì"
        ),
        (Ok(f), _) if f > ours => format!(
            "the data is format {f}, written by a newer version; this one reads format {ours} at most, so it does not start and changes nothing"
        ),
        (Ok(f), Language::Vi) => format!("định dạng {f} (phiên bản này đọc đến {ours})"),
        (Ok(f), _) => format!("format {f} (this version reads up to {ours})"),
        (Err(said), Language::Vi) => {
            format!("tệp định dạng ghi {said:?}, không phải một số; không sửa gì")
        }
        (Err(said), _) => format!("the format file says {said:?}, not a number; nothing changed"),
    }
}

/// A test source stands in for a device (`source` says which).
pub fn synthetic(lang: Language, source: &str) -> String {
    format!("{} ({source})", finding(lang, Finding::SyntheticSource))
}

/// A device file is missing: `[FAIL] Camera: không thấy /dev/video0`.
pub fn not_found(lang: Language, path: &str) -> String {
    format!("{} {path}", lang.pick("không thấy", "not found:"))
}

/// No input device of that name.
pub fn no_input_device(lang: Language, name: &str) -> String {
    format!(
        "{} '{name}'",
        lang.pick("không thấy thiết bị", "no input device named")
    )
}

fn in_use(lang: Language) -> &'static str {
    lang.pick("đang dùng trong phiên", "in use by the session")
}

/// The camera is there, but the session holds it.
pub fn camera_in_use(lang: Language, device: &str, mode: &str) -> String {
    format!(
        "{} {device}; {mode} ({})",
        lang.pick("có", "present"),
        in_use(lang)
    )
}

/// The camera gave a few frames in `mode`.
pub fn camera_captured(lang: Language, device: &str, mode: &str) -> String {
    format!(
        "{device}; {mode}; {}",
        lang.pick(
            "chụp thử 10 khung hình được",
            "test capture of 10 frames ok"
        )
    )
}

/// The sound cards are there, but the session holds the microphone.
pub fn microphone_in_use(lang: Language, cards: &str, echo_canceller: bool) -> String {
    format!(
        "{cards} ({}; {})",
        in_use(lang),
        if echo_canceller {
            lang.pick("đang khử tiếng vọng", "echo canceller running")
        } else {
            lang.pick("không khử tiếng vọng", "no echo canceller")
        }
    )
}

/// The H.264 encoder the box runs, hardware or software, and why a
/// hardware one is not used when it is not.
pub fn encoder(lang: Language, element: &str, hardware: bool, fallback: Option<&str>) -> String {
    let kind = if hardware {
        lang.pick("phần cứng", "hardware")
    } else {
        lang.pick("phần mềm", "software")
    };
    match fallback {
        Some(why) => format!(
            "{element} ({kind}); {}: {why}",
            lang.pick(
                "không dùng được bộ mã hoá phần cứng",
                "the hardware encoder is not used"
            )
        ),
        None => format!("{element} ({kind})"),
    }
}

/// The microphone heard almost nothing.
pub fn microphone_too_quiet(lang: Language, device: &str, peak_dbfs: f64) -> String {
    format!(
        "{device}: {} {peak_dbfs:.0} dBFS",
        lang.pick("quá nhỏ, đỉnh", "too quiet, peak")
    )
}

/// The microphone heard the technician.
pub fn microphone_level(lang: Language, device: &str, peak_dbfs: f64, cards: &str) -> String {
    format!(
        "{device}: {} {peak_dbfs:.0} dBFS; {cards}",
        lang.pick("mức đỉnh", "peak level")
    )
}

/// The beep was played; only a person can say whether it was heard.
pub fn beep_played(lang: Language, device: &str) -> String {
    format!(
        "{device}: {}",
        lang.pick(
            "đã phát tiếng bíp; không nghe thấy thì kiểm tra dây loa và âm lượng",
            "beep played; if nobody heard it, check the speaker cable and volume",
        )
    )
}

/// The screen's mode is not the configured size.
pub fn display_mode(lang: Language, connector: &str, mode: &str, configured: &str) -> String {
    format!(
        "{connector}: {mode}; {} {configured}",
        lang.pick("cấu hình là", "configured")
    )
}

/// What to do when the screen's mode is not the configured size.
pub fn set_display_size(lang: Language, width: &str, height: &str) -> String {
    format!(
        "{} [display] width = {width}, height = {height}",
        lang.pick("Đặt trong site.toml:", "Set in site.toml:")
    )
}

/// The daemon could not show the test pattern.
pub fn no_pattern(lang: Language, why: &str) -> String {
    format!(
        "{}: {why}",
        lang.pick("không hiện được mẫu thử", "no test pattern")
    )
}

/// The daemon counted the technician's press.
pub fn press_received(lang: Language, button: &str) -> String {
    format!(
        "{button} — {}",
        lang.pick("đã nhận lần nhấn", "press received")
    )
}

/// Nobody pressed, or the press never arrived.
pub fn no_press(lang: Language, button: &str) -> String {
    format!(
        "{button} — {}",
        lang.pick(
            "không nhận được lần nhấn nào trong 10 giây",
            "no press within 10 s"
        )
    )
}

/// A certificate or key the configuration names is missing.
pub fn missing_file(lang: Language, path: &str) -> String {
    format!("{} {path}", lang.pick("thiếu tệp", "missing file"))
}

/// The broker's certificate checked out (`tls`: the protocol and cipher);
/// `client`: the broker also accepted this box's own certificate.
pub fn broker_verified(lang: Language, at: &str, tls: &str, client: bool) -> String {
    format!(
        "{at} — {} ({tls}){}",
        lang.pick("chứng chỉ máy chủ hợp lệ", "broker certificate verified"),
        if client {
            lang.pick(
                ", hộp được chấp nhận bằng chứng chỉ riêng",
                ", this box accepted by its certificate",
            )
        } else {
            ""
        }
    )
}

/// A plain TCP connection to the broker worked.
pub fn reachable(lang: Language, at: &str) -> String {
    format!("{at} {}", lang.pick("kết nối được", "reachable"))
}

/// The session's own link to the hub is up.
pub fn hub_streaming(lang: Language, at: &str, rtt_ms: f64) -> String {
    format!(
        "{at}: {} {rtt_ms:.0} ms",
        lang.pick("đang truyền, RTT", "streaming, RTT")
    )
}

/// A session runs, but its link to the hub is down.
pub fn hub_session_down(lang: Language, at: &str) -> String {
    format!(
        "{at}: {}",
        lang.pick(
            "phiên đang chạy nhưng chưa kết nối được",
            "a session is running but the link is down",
        )
    )
}

/// A test SRT handshake with the hub worked.
pub fn hub_handshake(lang: Language, at: &str, rtt_ms: f64) -> String {
    format!(
        "{at}: {} {rtt_ms:.0} ms",
        lang.pick("bắt tay SRT thành công, RTT", "SRT handshake OK, RTT")
    )
}

/// The SIP server answered an OPTIONS ping.
pub fn sip_options(lang: Language, at: &str, answer: &str, ms: f64) -> String {
    format!(
        "{at}: {} {answer} ({ms:.0} ms)",
        lang.pick("trả lời OPTIONS:", "answered OPTIONS:")
    )
}

/// What the STUN server says of the box's address, or why it says nothing.
pub fn stun(lang: Language, server: &str, seen: Result<String, String>) -> String {
    match seen {
        Ok(addr) => format!(
            "{} {addr} (STUN {server})",
            lang.pick("nhìn từ bên ngoài là", "seen from outside as")
        ),
        Err(e) => format!(
            "STUN {server}: {} ({e})",
            lang.pick("không trả lời", "no answer")
        ),
    }
}

/// Registered with the SIP server; the call's state.
pub fn sip_state(lang: Language, registered: Option<bool>, call: &str) -> String {
    let reg = match registered {
        Some(true) => lang.pick("đã đăng ký", "registered"),
        Some(false) => lang.pick("chưa đăng ký", "not registered"),
        None => lang.pick(
            "không đăng ký (không có registrar)",
            "no registration (no registrar)",
        ),
    };
    format!("{reg}; {call}")
}

/// In the conference call.
pub fn sip_in_call(lang: Language, remote: &str, codecs: &str, rtt_ms: Option<f64>) -> String {
    let rtt = rtt_ms
        .map(|r| format!(", RTT {r:.0} ms"))
        .unwrap_or_default();
    format!(
        "{} {remote}: {codecs}{rtt}",
        lang.pick("đang trong cuộc gọi với", "in the call with")
    )
}

/// The archive took a test object under `key`.
pub fn archive_written(lang: Language, key: &str) -> String {
    format!("{} {key}", lang.pick("ghi thử được", "test write ok:"))
}

/// How full the recording quota is and what waits for the archive.
pub fn storage(
    lang: Language,
    used_percent: f64,
    backlog_segments: u64,
    backlog_mb: u64,
) -> String {
    format!(
        "{used_percent:.0}% {}; {backlog_segments} {} ({backlog_mb} MB)",
        lang.pick("hạn mức", "of quota"),
        lang.pick("đoạn chưa lên kho", "segments not yet archived"),
    )
}

/// The report's last line.
pub fn summary(lang: Language, passed: usize, failed: usize, skipped: usize) -> String {
    format!(
        "{}: {passed} {}, {failed} {}, {skipped} {}",
        lang.pick("Kết quả", "Result"),
        lang.pick("đạt", "passed"),
        lang.pick("lỗi", "failed"),
        lang.pick("bỏ qua", "skipped"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::vietnamese;
    use super::*;

    #[test]
    fn every_table_entry_has_both_languages() {
        let mut texts: Vec<(&'static str, &'static str)> = Vec::new();
        texts.extend(
            Name::ALL
                .iter()
                .map(|&t| (name(Language::Vi, t), name(Language::En, t))),
        );
        texts.extend(
            Finding::ALL
                .iter()
                .map(|&t| (finding(Language::Vi, t), finding(Language::En, t))),
        );
        texts.extend(
            Advice::ALL
                .iter()
                .map(|&t| (advice(Language::Vi, t), advice(Language::En, t))),
        );
        texts.extend(
            Prompt::ALL
                .iter()
                .map(|&t| (prompt(Language::Vi, t), prompt(Language::En, t))),
        );
        for (vi, en) in texts {
            assert!(!vi.is_empty() && !en.is_empty());
            assert!(!vietnamese(en), "English with Vietnamese letters: {en}");
        }
    }

    #[test]
    fn the_words_other_tests_look_for() {
        assert_eq!(
            not_found(Language::Vi, "/dev/video0"),
            "không thấy /dev/video0"
        );
        assert_eq!(name(Language::Vi, Name::Config), "Cấu hình");
        assert!(finding(Language::Vi, Finding::PatternShown).contains("mẫu thử"));
        assert_eq!(
            summary(Language::En, 3, 1, 2),
            "Result: 3 passed, 1 failed, 2 skipped"
        );
    }

    #[test]
    fn recipients_are_shortened_for_the_screen_and_counted() {
        let long = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".to_owned();
        let said = sealed_to(Language::En, &[long, "age1short".into()]);
        assert!(said.contains("2 recipients"), "{said}");
        assert!(said.contains("age1qyqszq…3290gq"), "{said}");
        assert!(said.contains("age1short"), "{said}");
        assert!(sealed_to(Language::Vi, &[]).contains("mã hoá"));
    }
}
