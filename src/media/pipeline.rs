//! Pipeline descriptions, built from the typed config as plain strings so
//! they can be read, logged and tested without GStreamer.
//!
//! The media path is split into separate pipelines joined by GStreamer's
//! `inter` elements and an appsink, so that a failing part never takes the
//! rest down:
//!
//! ```text
//! camera ─▶ intervideosink ┐                                   ┌─▶ uplink (appsrc ! srtsink)
//!                          ├─▶ encode (x264 + opus ─▶ mpegtsmux ─▶ appsink) ─┤
//! mic ────▶ interaudiosink ┘                                   └─▶ recorder
//! ```
//!
//! When the camera pipeline dies, `intervideosrc` turns black after its
//! timeout and the encode pipeline's slate overlay says why (the engine
//! sets its text, in the configured language); when the microphone dies,
//! `interaudiosrc` sends silence. The encoder never stops, so the session
//! and its recording go on.

use crate::config::{
    Audio, AudioCodec, AudioSource, Display, DisplaySink, Encoder, SpeakerSink, SrtPeer, Video,
    VideoSource,
};
use crate::core::sdp::{Codec, Negotiated, Stream};

/// Names of the elements the engine looks up.
pub const ENCODER: &str = "venc";
pub const SLATE: &str = "slate";
pub const TS_SINK: &str = "ts";
/// The far end's track for the recording: sound only, its own TS.
pub const FAR_SINK: &str = "farts";
pub const UPLINK_SRC: &str = "src";
pub const UPLINK_SINK: &str = "sink";
pub const CAMERA_OUT: &str = "camout";
/// The `appsrc` a raw camera clip is read into (`media::y4m`).
pub const CAMERA_FILE: &str = "camfile";
/// The camera pipeline's sink into the encode: its last frame is the still
/// a `snapshot` takes while live.
pub const CAMERA_SINK: &str = "camsink";
/// The room's screen sink: its last frame is the screen's still.
pub const SCREEN_SINK: &str = "screen";
/// The appsink of a still taken while idle.
pub const STILL_SINK: &str = "still";
pub const MIC_LEVEL: &str = "miclevel";
pub const RETURN_SRC: &str = "retsrc";
pub const RETURN_VIDEO: &str = "retv";
pub const RETURN_AUDIO: &str = "reta";
pub const COMPOSITOR: &str = "comp";
pub const CENTER_TEXT: &str = "center";
pub const BANNER_TEXT: &str = "banner";
pub const NOTICE_TEXT: &str = "notice";
pub const CALL_VIDEO_TAP: &str = "callvtap";
pub const CALL_AUDIO_TAP: &str = "callatap";
pub const CALL_VIDEO_SRC: &str = "callv";
pub const CALL_AUDIO_SRC: &str = "calla";
pub const CALL_RTPBIN: &str = "rtp";
/// The source of a meeting PIN's RFC 4733 events.
pub const CALL_DTMF: &str = "dtmf";

/// Process-wide channels between the session's pipelines and the display
/// and speaker, which run for the daemon's whole life.
pub const RETURN_VIDEO_CH: &str = "diemcau-return-video";
pub const RETURN_AUDIO_CH: &str = "diemcau-return-audio";
pub const SELF_VIEW_CH: &str = "diemcau-self-view";
/// The echo canceller's reference: what the room's speaker plays.
pub const ECHO_PROBE: &str = "diemcau-echo-probe";

/// The return feed's audio format, which the echo canceller needs to match.
pub const RETURN_AUDIO_CAPS: &str =
    "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2";

/// Channel names for the inter elements, unique per engine.
#[derive(Debug, Clone)]
pub struct Channels {
    pub video: String,
    pub audio: String,
    /// The far end's sound on its way to the recording, when the session
    /// has a call or a return feed to record.
    pub far: Option<String>,
}

/// Where the far end's decoded sound goes: the speaker's channel and, when
/// the session records it, the far track's channel too. Each branch leaks on
/// its own, so a stalled speaker never starves the record nor the reverse.
fn far_audio_out(far: Option<&str>, sink_opts: &str) -> String {
    match far {
        None => format!("interaudiosink channel={RETURN_AUDIO_CH}{sink_opts}"),
        Some(f) => format!(
            "tee name=faraudio \
             faraudio. ! queue max-size-buffers=50 max-size-time=0 max-size-bytes=0 leaky=downstream ! interaudiosink channel={RETURN_AUDIO_CH}{sink_opts} \
             faraudio. ! queue max-size-buffers=50 max-size-time=0 max-size-bytes=0 leaky=downstream ! interaudiosink channel={f}{sink_opts}"
        ),
    }
}

/// Where the far end's decoded picture goes: the display's channel. A video
/// sink drops a frame that comes later than its running time allows (20 ms)
/// and tells the decoder to skip frames (QoS); on a slow box, or under
/// software emulation, decoding and scaling one frame takes longer than
/// that, so every frame came late and the screen stayed black for minutes
/// while the call was up. A late frame is shown at once instead, as an audio
/// sink plays late sound; on-time frames still wait for their time, which
/// keeps the picture in step with the far end's sound.
fn far_video_out() -> String {
    format!("intervideosink channel={RETURN_VIDEO_CH} max-lateness=-1 qos=false")
}

fn raw_video_caps(v: &Video) -> String {
    format!(
        "video/x-raw,format=I420,width={},height={},framerate={}/1,pixel-aspect-ratio=1/1",
        v.width, v.height, v.framerate
    )
}

fn raw_audio_caps(a: &Audio) -> String {
    format!(
        "audio/x-raw,format=S16LE,layout=interleaved,rate={},channels={}",
        a.rate, a.channels
    )
}

/// The camera pipeline: source to `intervideosink`.
/// With `self_view`, a small copy goes to the display's corner.
/// `src_caps`: for a V4L2 camera the chosen mode's caps (and decoder),
/// when known; for a raw clip the caps of its frames when `media::y4m`
/// reads it.
pub fn camera(v: &Video, ch: &Channels, self_view: bool, src_caps: Option<&str>) -> String {
    let src = camera_source(v, src_caps);
    let caps = raw_video_caps(v);
    let ch = &ch.video;
    if !self_view {
        return format!(
            "{src} ! videoconvert ! videoscale ! videorate ! {caps} ! identity name={CAMERA_OUT} ! intervideosink name={CAMERA_SINK} channel={ch}"
        );
    }
    format!(
        "{src} ! videoconvert ! videoscale ! videorate ! {caps} ! identity name={CAMERA_OUT} ! tee name=t \
         t. ! queue max-size-buffers=2 leaky=downstream ! intervideosink name={CAMERA_SINK} channel={ch} \
         t. ! queue max-size-buffers=1 leaky=downstream ! videoscale ! {self_caps} ! intervideosink channel={SELF_VIEW_CH}",
        self_caps = self_view_caps(v.framerate),
    )
}

/// A still of the camera while no session runs it (`snapshot`): the same
/// source, into an appsink that keeps the latest frame.
pub fn camera_still(v: &Video) -> String {
    format!(
        "{src} ! videoconvert ! videoscale ! {caps} ! appsink name={STILL_SINK} max-buffers=1 drop=true sync=false",
        src = camera_source(v, None),
        caps = raw_video_caps(v),
    )
}

/// The camera's source elements, up to raw video.
fn camera_source(v: &Video, src_caps: Option<&str>) -> String {
    match &v.source {
        // `ball` is cheap to draw, and moving, so a frozen picture shows.
        VideoSource::Synthetic(frames) => format!(
            "videotestsrc is-live=true pattern=ball num-buffers={} ! timeoverlay",
            frames.map_or(-1, i64::from)
        ),
        // A raw YUV4MPEG clip whose frames are GStreamer's I420 as they
        // are: read frame by frame into reused memory (`media::y4m`),
        // one copy from the file and no allocation per frame.
        VideoSource::File(path) if is_y4m(path) && src_caps.is_some() => format!(
            "appsrc name={CAMERA_FILE} format=time caps=\"{}\" ! identity sync=true",
            src_caps.unwrap_or_default()
        ),
        // Another raw clip goes straight to its parser, read in 128 KiB
        // blocks. Through decodebin it cost a third more CPU than the
        // encode's anchors allow (`bench/uplink-cpu.sh`): decodebin's
        // typefinder then pulls the file 4 KiB at a time (a buffer, a
        // read and a copy per 4 KiB, 10 000 a second at 720p30), and
        // finding the type loads gst-libav's avformat typefinders, with
        // libavcodec, libavfilter and what they link (about 15 MB of
        // resident memory). Other files (a demo's .mkv or .mp4) need
        // decodebin.
        VideoSource::File(path) if is_y4m(path) => format!(
            "filesrc location=\"{}\" blocksize=131072 ! y4mdec ! identity sync=true",
            path.display().to_string().replace('"', "")
        ),
        VideoSource::File(path) => format!(
            "filesrc location=\"{}\" ! decodebin ! identity sync=true",
            path.display().to_string().replace('"', "")
        ),
        VideoSource::V4l2(dev) => format!(
            "v4l2src device=\"{}\" ! {}",
            dev.display().to_string().replace('"', ""),
            src_caps.unwrap_or("decodebin")
        ),
    }
}

/// Whether a camera file is a raw YUV4MPEG clip, by its name.
pub fn is_y4m(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("y4m"))
}

/// The self-view picture: a quarter of a 1280x720 display.
fn self_view_caps(framerate: u32) -> String {
    format!("video/x-raw,format=I420,width=320,height=180,framerate={framerate}/1,pixel-aspect-ratio=1/1")
}

/// The echo canceller on the microphone, against what the speaker's
/// `webrtcechoprobe` ([`ECHO_PROBE`]) played: one description, so that
/// `bench/echo.sh` measures the daemon's own settings. webrtcdsp works on
/// 10 ms frames at 48/32/16 kHz; the rate is validated. Measured on the
/// bench's simulated room, echo arriving 20, 60 and 120 ms after the
/// probe saw it: ERLE 37.7, 31.0 and 9.3 dB. `delay-agnostic=true` gave
/// 32.5, 23.8 and 7.8, and `extended-filter=true` changed nothing, so
/// neither is set: the canceller relies on the latencies the speaker's
/// sink and the microphone's source report, and an echo much later than
/// they say is beyond it.
pub fn echo_canceller() -> String {
    format!(
        "webrtcdsp probe={ECHO_PROBE} echo-cancel=true noise-suppression=true gain-control=false"
    )
}

/// The microphone pipeline: source to `interaudiosink`, with a level meter,
/// and the echo canceller when the speaker pipeline provides its reference.
pub fn microphone(a: &Audio, ch: &Channels, echo_cancel: bool) -> String {
    let src = match &a.source {
        AudioSource::Synthetic => {
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 samplesperbuffer=480"
                .to_owned()
        }
        AudioSource::Alsa(dev) => format!(
            "alsasrc device=\"{}\" buffer-time=40000 latency-time=10000",
            dev.replace('"', "")
        ),
    };
    let aec = if echo_cancel {
        format!("{} ! audioconvert ! ", echo_canceller())
    } else {
        String::new()
    };
    format!(
        "{src} ! audioconvert ! audioresample ! {caps} ! {aec}level name={MIC_LEVEL} interval=1000000000 post-messages=true ! interaudiosink channel={ch}",
        caps = raw_audio_caps(a),
        ch = ch.audio
    )
}

/// The H.264 encoder a session runs, and why not the one asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderChoice {
    pub encoder: Encoder,
    /// A hardware encoder that is missing or did not start, and so x264.
    pub fallback: Option<String>,
}

/// The hardware encoders `auto` tries, best first.
const HARDWARE: [Encoder; 2] = [Encoder::Vaapi, Encoder::V4l2];

/// The element an encoder is.
pub fn encoder_factory(e: Encoder) -> &'static str {
    match e {
        Encoder::Vaapi => "vaapih264enc",
        Encoder::V4l2 => "v4l2h264enc",
        Encoder::X264 | Encoder::Auto => "x264enc",
    }
}

/// Which H.264 encoder to run: for `auto` the first hardware encoder that
/// is `present` (its element and its device) and `works` (it encoded a few
/// frames: a VA-API driver can be installed for a GPU it cannot drive),
/// else x264. A hardware encoder the configuration names falls back to
/// x264 the same way, with the reason: a session with a software encode
/// beats no session. Pure: the probes are passed in, and `works` is only
/// asked of encoders that are present.
pub fn choose_encoder(
    want: Encoder,
    present: impl Fn(Encoder) -> bool,
    mut works: impl FnMut(Encoder) -> bool,
) -> EncoderChoice {
    let x264 = |fallback: Option<String>| EncoderChoice {
        encoder: Encoder::X264,
        fallback,
    };
    match want {
        Encoder::X264 => x264(None),
        Encoder::Auto => {
            let mut failed = Vec::new();
            for e in HARDWARE {
                if !present(e) {
                    continue;
                }
                if works(e) {
                    return EncoderChoice {
                        encoder: e,
                        fallback: None,
                    };
                }
                failed.push(encoder_factory(e));
            }
            x264((!failed.is_empty()).then(|| format!("{} did not start", failed.join(", "))))
        }
        hw => {
            let name = encoder_factory(hw);
            if !present(hw) {
                x264(Some(format!("{name} is not on this box")))
            } else if !works(hw) {
                x264(Some(format!("{name} did not start")))
            } else {
                EncoderChoice {
                    encoder: hw,
                    fallback: None,
                }
            }
        }
    }
}

/// A few frames at the session's size through `enc`, to see that it starts.
pub fn encoder_probe(v: &Video, enc: Encoder) -> String {
    format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=I420,width={},height={},framerate={}/1 ! {} ! fakesink",
        v.width,
        v.height,
        v.framerate,
        video_encoder(v, enc)
    )
}

fn video_encoder(v: &Video, enc: Encoder) -> String {
    let gop = v.keyframe_interval_s * v.framerate;
    match enc {
        Encoder::X264 | Encoder::Auto => format!(
            "x264enc name={ENCODER} tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={gop} vbv-buf-capacity=1000 ! video/x-h264,profile=constrained-baseline",
            v.bitrate_kbps
        ),
        Encoder::Vaapi => format!(
            "vaapih264enc name={ENCODER} rate-control=cbr bitrate={} keyframe-period={gop}",
            v.bitrate_kbps
        ),
        Encoder::V4l2 => format!(
            "v4l2h264enc name={ENCODER} extra-controls=\"controls,video_bitrate={},h264_i_frame_period={gop}\" ! video/x-h264,level=(string)4",
            v.bitrate_kbps * 1000
        ),
    }
}

fn audio_encoder(a: &Audio) -> String {
    match a.codec {
        AudioCodec::Opus => format!(
            "opusenc bitrate={} frame-size=20 audio-type=voice",
            a.bitrate_kbps * 1000
        ),
        AudioCodec::Aac => format!("avenc_aac bitrate={} ! aacparse", a.bitrate_kbps * 1000),
    }
}

/// The encode pipeline: inter sources to one MPEG-TS byte stream in an appsink.
/// With `call_taps`, the same H.264 (after the parser) and the raw audio
/// (before the TS's audio encoder) also go to two appsinks for the
/// conference call: one camera encode serves the recording, SRT and the
/// call. The taps' queues leak, so a stalled call never holds the
/// recording back.
pub fn encode(v: &Video, a: &Audio, enc: Encoder, ch: &Channels, call_taps: bool) -> String {
    let (vtap, atap) = if call_taps {
        (
            format!(
                "! tee name=vt vt. ! queue max-size-buffers=30 max-size-time=0 max-size-bytes=0 leaky=downstream \
                 ! appsink name={CALL_VIDEO_TAP} sync=false async=false max-buffers=0 drop=false vt. "
            ),
            format!(
                "! tee name=at at. ! queue max-size-buffers=50 max-size-time=0 max-size-bytes=0 leaky=downstream \
                 ! appsink name={CALL_AUDIO_TAP} sync=false async=false max-buffers=0 drop=false at. "
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        "intervideosrc channel={vch} timeout=1000000000 ! {vcaps} \
         ! textoverlay name={SLATE} text=\"\" font-desc=\"DejaVu Sans Bold 28\" valignment=center halignment=center shaded-background=true \
         ! queue max-size-buffers=3 max-size-time=0 max-size-bytes=0 \
         ! {venc} ! h264parse config-interval=-1 {vtap}! queue max-size-time=0 max-size-bytes=0 max-size-buffers=60 ! mux. \
         interaudiosrc channel={ach} ! {acaps} ! audioconvert ! audioresample {atap}\
         ! {aenc} ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=100 ! mux. \
         mpegtsmux name=mux alignment=7 ! appsink name={TS_SINK} sync=false async=false max-buffers=0 drop=false{far}",
        far = match &ch.far {
            // In the same pipeline as the room's stream, on the same clock:
            // both TS carry times on one scale, so export lines them up.
            // The source plays silence whenever no far end is heard, so the
            // track runs the whole session, gaps in the call included.
            Some(f) => format!(
                " interaudiosrc channel={f} ! {RETURN_AUDIO_CAPS} ! audioconvert ! audioresample \
                 ! audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 audio-type=voice \
                 ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=100 \
                 ! mpegtsmux name=farmux alignment=7 ! appsink name={FAR_SINK} sync=false async=false max-buffers=0 drop=false"
            ),
            None => String::new(),
        },
        vch = ch.video,
        ach = ch.audio,
        vcaps = raw_video_caps(v),
        acaps = raw_audio_caps(a),
        venc = video_encoder(v, enc),
        aenc = audio_encoder(a),
    )
}

/// The conference call's RTP pipeline for negotiated streams: the encode
/// pipeline's H.264 and raw audio in through two appsrcs, out as RTP from
/// each stream's local port (symmetric RTP: the engine makes each `udpsink`
/// send from its `udpsrc`'s socket, so a far end behind NAT, or an MCU that
/// latches, answers to where the packets came from); the far end's picture
/// and sound decoded into the display's and speaker's channels. The inter
/// sinks do not wait for preroll: the far end's picture starts only at its
/// next keyframe, and its sound must not wait for it.
/// Session 0 is audio, session 1 video; RTCP on the port above each. The
/// engine links rtpbin's receive pads to `depay_0` and `depay_1` by their
/// session number as they appear (a delayed link by caps in the
/// description may take the wrong stream's pad).
pub fn call(n: &Negotiated, d: &Display, far: Option<&str>) -> String {
    let mut out = format!("rtpbin name={CALL_RTPBIN} latency=120 ");
    let udp = |s: &Stream, id: u32| {
        let (ip, port) = (s.remote.ip(), s.remote.port());
        let (rport, lp, lrp) = (s.remote_rtcp, s.local_port, s.local_port + 1);
        let out = |what: &str| {
            format!(
                "udpsink name={what}_out_{id} host={ip} port={} sync=false async=false",
                if what == "rtp" { port } else { rport }
            )
        };
        if s.srtp.is_some() {
            // SRTP outside rtpbin: rtpbin's figures stay readable, and the
            // engine sets the keys on `srtpenc_N` and `srtpdec_N` (never in
            // this description, which is logged).
            format!(
                "srtpenc name=srtpenc_{id} {CALL_RTPBIN}.send_rtp_src_{id} ! srtpenc_{id}.rtp_sink_0 srtpenc_{id}.rtp_src_0 ! {rtp_out} \
                 {CALL_RTPBIN}.send_rtcp_src_{id} ! srtpenc_{id}.rtcp_sink_0 srtpenc_{id}.rtcp_src_0 ! {rtcp_out} \
                 srtpdec name=srtpdec_{id} \
                 udpsrc name=rtp_in_{id} port={lp} caps=\"{caps}\" ! srtpdec_{id}.rtp_sink srtpdec_{id}.rtp_src ! {CALL_RTPBIN}.recv_rtp_sink_{id} \
                 udpsrc name=rtcp_in_{id} port={lrp} caps=\"application/x-srtcp\" ! srtpdec_{id}.rtcp_sink srtpdec_{id}.rtcp_src ! {CALL_RTPBIN}.recv_rtcp_sink_{id} ",
                rtp_out = out("rtp"),
                rtcp_out = out("rtcp"),
                caps = rtp_caps(s).replacen("application/x-rtp", "application/x-srtp", 1),
            )
        } else {
            format!(
                "{CALL_RTPBIN}.send_rtp_src_{id} ! {rtp_out} \
                 {CALL_RTPBIN}.send_rtcp_src_{id} ! {rtcp_out} \
                 udpsrc name=rtp_in_{id} port={lp} caps=\"{caps}\" ! {CALL_RTPBIN}.recv_rtp_sink_{id} \
                 udpsrc name=rtcp_in_{id} port={lrp} ! {CALL_RTPBIN}.recv_rtcp_sink_{id} ",
                rtp_out = out("rtp"),
                rtcp_out = out("rtcp"),
                caps = rtp_caps(s),
            )
        }
    };
    if let Some(s) = &n.audio {
        let (enc, pay, depay) = match s.codec {
            Codec::G722 => (
                "audio/x-raw,format=S16LE,rate=16000,channels=1 ! avenc_g722",
                "rtpg722pay",
                "rtpg722depay name=depay_0 ! avdec_g722",
            ),
            Codec::Opus => (
                "audio/x-raw,rate=48000 ! opusenc bitrate=32000 frame-size=20 audio-type=voice inband-fec=true",
                "rtpopuspay",
                "rtpopusdepay name=depay_0 ! opusdec",
            ),
            Codec::Pcma => (
                "audio/x-raw,rate=8000,channels=1 ! alawenc",
                "rtppcmapay",
                "rtppcmadepay name=depay_0 ! alawdec",
            ),
            _ => (
                "audio/x-raw,rate=8000,channels=1 ! mulawenc",
                "rtppcmupay",
                "rtppcmudepay name=depay_0 ! mulawdec",
            ),
        };
        // RFC 4733 events (a meeting PIN) share the audio stream: the mux
        // gives them priority and keeps one SSRC and sequence.
        let (mux, events) = match s.dtmf_pt {
            Some(d) => (
                "! rtpdtmfmux name=dtmfmux ".to_owned(),
                format!(
                    "rtpdtmfsrc name={CALL_DTMF} pt={d} clock-rate={rate} ! dtmfmux.priority_sink_0 ",
                    rate = s.codec.clock_rate()
                ),
            ),
            None => (String::new(), String::new()),
        };
        out += &format!(
            "appsrc name={CALL_AUDIO_SRC} is-live=true format=time max-bytes=200000 leaky-type=downstream block=false \
             ! queue max-size-buffers=20 leaky=downstream ! audioconvert ! audioresample ! {enc} ! {pay} pt={pt} \
             {mux}! {CALL_RTPBIN}.send_rtp_sink_0 {events}{udp} \
             {depay} ! audioconvert ! audioresample ! {RETURN_AUDIO_CAPS} \
             ! identity name={RETURN_AUDIO} ! {out} ",
            pt = s.pt,
            udp = udp(s, 0),
            out = far_audio_out(far, " async=false"),
        );
    }
    if let Some(s) = &n.video {
        // SPS and PPS before every keyframe: a far end that joins late, or
        // an MCU that switched, decodes from the next keyframe on.
        out += &format!(
            "appsrc name={CALL_VIDEO_SRC} is-live=true format=time max-bytes=4000000 leaky-type=downstream block=false \
             ! queue max-size-buffers=60 leaky=downstream ! h264parse ! rtph264pay pt={pt} config-interval=-1 mtu=1200 \
             ! {CALL_RTPBIN}.send_rtp_sink_1 {udp} \
             rtph264depay name=depay_1 request-keyframe=true wait-for-keyframe=true ! h264parse ! avdec_h264 ! videoconvert ! videoscale ! videorate \
             ! {vcaps} ! identity name={RETURN_VIDEO} ! {out} async=false ",
            pt = s.pt,
            udp = udp(s, 1),
            vcaps = display_caps(d),
            out = far_video_out(),
        );
    }
    out
}

/// The caps of what the far end sends. On video, `rtcp-fb-nack-pli`: rtpbin
/// turns a keyframe request from the depayloader (a packet lost) or from
/// the call's watch (a picture that does not decode) into an RTCP PLI only
/// for a payload type whose caps carry it. Without it no request ever left
/// the box, and after a lost keyframe the screen waited for the far end's
/// next one by itself: 22 to 50 s in the virtual room, where baresip sends
/// one every 10 s and the emulated NAT loses 4% of packets, or never. Every
/// MCU answers a PLI; the box's own SDP offers `nack pli` too.
fn rtp_caps(s: &Stream) -> String {
    let name = match s.codec {
        Codec::Opus => "OPUS",
        c => c.name(),
    };
    let (media, fb) = if s.codec.is_video() {
        ("video", ",rtcp-fb-nack-pli=(boolean)true")
    } else {
        ("audio", "")
    };
    format!(
        "application/x-rtp,media={media},clock-rate={},encoding-name={name},payload={}{fb}",
        s.codec.clock_rate(),
        s.pt
    )
}

/// The uplink pipeline: TS bytes from the engine to the hub over SRT.
/// Up to `queue_bytes` wait while connecting; older bytes are dropped.
pub fn uplink(peer: &SrtPeer, queue_bytes: u64) -> String {
    format!(
        "appsrc name={UPLINK_SRC} is-live=true format=time max-bytes={queue_bytes} leaky-type=downstream block=false \
         caps=\"video/mpegts,systemstream=(boolean)true,packetsize=(int)188\" \
         ! srtsink name={UPLINK_SINK} uri=\"{uri}\" latency={lat} wait-for-connection=false sync=false async=false",
        uri = peer.uri(),
        lat = peer.latency_ms,
    )
}

/// The return feed: the hub's program (MPEG-TS over SRT, caller mode),
/// decoded into the display's and speaker's channels.
pub fn return_feed(peer: &SrtPeer, d: &Display, far: Option<&str>) -> String {
    format!(
        "srtsrc name={RETURN_SRC} uri=\"{uri}\" latency={lat} ! decodebin name=dec \
         dec. ! queue max-size-buffers=3 leaky=downstream ! videoconvert ! videoscale ! videorate \
         ! {vcaps} ! identity name={RETURN_VIDEO} ! {vout} \
         dec. ! queue ! audioconvert ! audioresample ! {RETURN_AUDIO_CAPS} ! identity name={RETURN_AUDIO} \
         ! {out}",
        out = far_audio_out(far, ""),
        vout = far_video_out(),
        uri = peer.uri(),
        lat = peer.latency_ms,
        vcaps = display_caps(d),
    )
}

/// The technician's test pattern (`diemcau doctor`): colour bars into the
/// display's return-feed channel, the whole screen, for as long as it runs.
/// Only while idle, when no return feed uses the channel; nothing is drawn
/// (or costs anything) the rest of the time.
pub fn test_pattern(d: &Display) -> String {
    format!(
        "videotestsrc is-live=true pattern=smpte ! {caps} ! intervideosink channel={RETURN_VIDEO_CH}",
        caps = display_caps(d),
    )
}

/// The technician's test tone: an 880 Hz beep into the speaker's return-feed
/// channel, for as long as it runs. Only while idle, like the pattern.
pub fn test_tone() -> String {
    format!(
        "audiotestsrc is-live=true wave=sine freq=880 volume=0.3 samplesperbuffer=480 \
         ! {RETURN_AUDIO_CAPS} ! interaudiosink channel={RETURN_AUDIO_CH}"
    )
}

fn display_caps(d: &Display) -> String {
    format!(
        "video/x-raw,format=I420,width={},height={},framerate=25/1,pixel-aspect-ratio=1/1",
        d.width, d.height
    )
}

/// The display: the hub's picture full screen, the self-view in a corner,
/// text overlays for state, and a clock. `None` when there is no display.
pub fn display(d: &Display) -> Option<String> {
    let sink = match &d.sink {
        DisplaySink::None => return None,
        DisplaySink::Fake => "fakesink sync=true".to_owned(),
        DisplaySink::Window => "autovideosink sync=true".to_owned(),
        DisplaySink::Kms { driver, connector } => {
            // The mode stays the one the console set (the screen's preferred
            // mode); the picture is composed at that size (`display.width`,
            // `height`, which `diemcau doctor` checks). Forcing a modeset
            // leaves some drivers (bochs-drm) showing nothing.
            // A late frame is shown, not dropped (`max-lateness=-1`, no
            // QoS): on a loaded box (an upload backlog after a power cut,
            // under software emulation) composing a frame can take longer
            // than the 20 ms a video sink allows, and the sink then dropped
            // every frame: the screen froze on its first one, clock and all.
            let mut s = "kmssink skip-vsync=true max-lateness=-1 qos=false".to_owned();
            if let Some(drv) = driver {
                s += &format!(" driver-name={}", drv.replace([' ', '"', '!'], ""));
            }
            if *connector != 0 {
                s += &format!(" connector-id={connector}");
            }
            s
        }
    };
    // Text sizes scale with the screen.
    let big = (d.height / 28).max(12);
    let small = (d.height / 40).max(10);
    Some(format!(
        "compositor name={COMPOSITOR} background=black ! {caps} \
         ! textoverlay name={CENTER_TEXT} text=\"\" font-desc=\"DejaVu Sans Bold {big}\" valignment=center halignment=center line-alignment=center shaded-background=true \
         ! textoverlay name={BANNER_TEXT} text=\"\" font-desc=\"DejaVu Sans Bold {small}\" valignment=top halignment=left shaded-background=true \
         ! textoverlay name={NOTICE_TEXT} text=\"\" font-desc=\"DejaVu Sans {small}\" valignment=bottom halignment=right shaded-background=true \
         ! clockoverlay time-format=\"%H:%M:%S  %d/%m/%Y\" font-desc=\"DejaVu Sans {small}\" valignment=bottom halignment=left shaded-background=true \
         ! videoconvert ! {sink} name={SCREEN_SINK} \
         intervideosrc channel={RETURN_VIDEO_CH} timeout=1000000000 ! {caps} ! {COMPOSITOR}.sink_0 \
         intervideosrc channel={SELF_VIEW_CH} timeout=1000000000 ! {self_caps} ! {COMPOSITOR}.sink_1",
        caps = display_caps(d),
        self_caps = self_view_caps(25),
    ))
}

/// The speaker: the return feed's audio, through the echo canceller's probe.
pub fn speaker(s: &SpeakerSink) -> Option<String> {
    let sink = match s {
        SpeakerSink::None => return None,
        SpeakerSink::Fake => "fakesink sync=true".to_owned(),
        SpeakerSink::Alsa(dev) => format!(
            "alsasink device=\"{}\" buffer-time=60000",
            dev.replace('"', "")
        ),
    };
    Some(format!(
        "interaudiosrc channel={RETURN_AUDIO_CH} ! {RETURN_AUDIO_CAPS} ! webrtcechoprobe name={ECHO_PROBE} ! audioconvert ! audioresample ! {sink}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use gst::prelude::*;
    use gstreamer as gst;
    use gstreamer_app as gst_app;
    use std::path::Path;

    fn cfg() -> Config {
        Config::parse(
            Path::new("t.toml"),
            "[site]\nid=\"x\"\nname=\"X\"\n[video]\nsource=\"synthetic\"\nwidth=640\nheight=360\nframerate=25\n[uplink]\nurl=\"srt://127.0.0.1:9000\"\n",
        )
        .unwrap()
    }

    fn ch() -> Channels {
        Channels {
            video: "v1".into(),
            audio: "a1".into(),
            far: None,
        }
    }

    /// A raw clip is read by the engine (`media::y4m`, tested there) or
    /// parsed by y4mdec in big reads; any other file through decodebin.
    /// The last two are run: a few frames of each reach a sink.
    #[test]
    fn a_camera_file_plays_whether_raw_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let y4m = dir.path().join("clip.Y4M");
        let mkv = dir.path().join("clip.mkv");
        let mut c = cfg();
        c.video.source = VideoSource::File(y4m.clone());
        let raw = camera_source(&c.video, None);
        assert!(
            raw.contains("blocksize=131072 ! y4mdec") && !raw.contains("decodebin"),
            "{raw}"
        );
        // A clip the engine reads itself (`media::y4m`): an appsrc.
        let own = camera_source(&c.video, Some("video/x-raw,format=I420"));
        assert!(
            own.starts_with(&format!("appsrc name={CAMERA_FILE} format=time")),
            "{own}"
        );
        c.video.source = VideoSource::File(mkv.clone());
        let other = camera_source(&c.video, None);
        assert!(other.contains("! decodebin !"), "{other}");

        let write = |path: &Path, tail: &str| {
            super::super::runner::run_to_eos(
                &format!(
                    "videotestsrc num-buffers=5 ! video/x-raw,format=I420,width=64,height=48,framerate=25/1 \
                     ! {tail} ! filesink location=\"{}\"",
                    path.display()
                ),
                std::time::Duration::from_secs(10),
            )
            .unwrap();
        };
        write(&y4m, "y4menc");
        write(&mkv, "x264enc ! matroskamux");
        for src in [raw, other] {
            let p = super::super::runner::launch(&format!(
                "{src} ! videoconvert ! appsink name=out sync=false emit-signals=false"
            ))
            .unwrap();
            let sink = p
                .by_name("out")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .unwrap();
            p.set_state(gst::State::Playing).unwrap();
            let mut frames = 0;
            while sink
                .try_pull_sample(gst::ClockTime::from_seconds(10))
                .is_some()
            {
                frames += 1;
            }
            p.set_state(gst::State::Null).unwrap();
            assert_eq!(frames, 5, "{src}");
        }
    }

    #[test]
    fn encode_uses_configured_gop_and_bitrate() {
        let c = cfg();
        let d = encode(&c.video, &c.audio, Encoder::X264, &ch(), false);
        assert!(d.contains("key-int-max=50"), "{d}");
        assert!(d.contains("bitrate=2500"), "{d}");
        assert!(d.contains("opusenc bitrate=64000"), "{d}");
        assert!(d.contains("channel=v1") && d.contains("channel=a1"));
        assert!(!d.contains(FAR_SINK), "{d}");
        let far = Channels {
            far: Some("f1".into()),
            ..ch()
        };
        let d = encode(&c.video, &c.audio, Encoder::X264, &far, false);
        assert!(
            d.contains("interaudiosrc channel=f1") && d.contains(FAR_SINK),
            "{d}"
        );
    }

    #[test]
    fn auto_prefers_hardware_that_starts_and_falls_back_to_x264() {
        let choose = |want, present: &[Encoder], working: &[Encoder]| {
            let mut asked = Vec::new();
            let c = choose_encoder(
                want,
                |e| present.contains(&e),
                |e| {
                    asked.push(e);
                    working.contains(&e)
                },
            );
            (c, asked)
        };
        let hw = [Encoder::Vaapi, Encoder::V4l2];
        // Nothing there: x264, no probe run, nothing to explain.
        let (c, asked) = choose(Encoder::Auto, &[], &[]);
        assert_eq!(
            (c.encoder, c.fallback, asked),
            (Encoder::X264, None, vec![])
        );
        // VA-API first when it works.
        let (c, _) = choose(Encoder::Auto, &hw, &hw);
        assert_eq!(c.encoder, Encoder::Vaapi);
        // A VA-API driver that cannot encode: the next one.
        let (c, asked) = choose(Encoder::Auto, &hw, &[Encoder::V4l2]);
        assert_eq!(c.encoder, Encoder::V4l2);
        assert_eq!(asked, hw);
        // None starts: x264, saying which failed.
        let (c, _) = choose(Encoder::Auto, &hw, &[]);
        assert_eq!(c.encoder, Encoder::X264);
        assert_eq!(
            c.fallback.as_deref(),
            Some("vaapih264enc, v4l2h264enc did not start")
        );
        // Named in the configuration: used, or x264 with the reason.
        let (c, _) = choose(Encoder::V4l2, &hw, &hw);
        assert_eq!(c.encoder, Encoder::V4l2);
        let (c, asked) = choose(Encoder::Vaapi, &[], &[]);
        assert_eq!(c.encoder, Encoder::X264);
        assert_eq!(
            c.fallback.as_deref(),
            Some("vaapih264enc is not on this box")
        );
        assert!(asked.is_empty());
        let (c, _) = choose(Encoder::X264, &hw, &hw);
        assert_eq!((c.encoder, c.fallback), (Encoder::X264, None));
    }

    #[test]
    fn device_paths_cannot_break_out_of_quotes() {
        let mut c = cfg();
        c.video.source = VideoSource::V4l2("/dev/x\" ! fakesink".into());
        let d = camera(&c.video, &ch(), true, None);
        assert!(d.contains("device=\"/dev/x ! fakesink\""), "{d}");
    }

    #[test]
    fn uplink_is_caller_with_latency() {
        let c = cfg();
        let d = uplink(c.uplink.peer.as_ref().unwrap(), 1000);
        assert!(
            d.contains("srt://127.0.0.1:9000?mode=caller&latency=200"),
            "{d}"
        );
        assert!(d.contains("leaky-type=downstream"), "{d}");
    }
}
