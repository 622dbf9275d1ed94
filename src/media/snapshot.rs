//! Stills for the NOC (`snapshot`): what the camera sends to the encoder
//! and what the room's screen shows, as JPEG at the width asked for.
//!
//! Nothing is added to the running pipelines: a video sink keeps its last
//! frame (`last-sample`) anyway, so a still while live costs one JPEG
//! encode off to the side, and the stream and the recording never see it.
//! With no session the camera is not running; a still then opens it for
//! the few frames it takes.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::{pipeline, runner};
use crate::config::Video;

/// A JPEG and its size.
#[derive(Debug, Clone)]
pub struct Still {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// `sample` as a JPEG `width` pixels wide (never wider than the frame),
/// its aspect kept. Blocking: a small conversion pipeline of its own.
pub fn jpeg(sample: &gst::Sample, width: u32) -> Result<Still, String> {
    let caps = sample.caps().ok_or("the frame has no format")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| format!("the frame: {e}"))?;
    let w = width.clamp(16, info.width().max(16));
    // Even, for the chroma planes.
    let h = ((u64::from(info.height()) * u64::from(w) / u64::from(info.width().max(1))) as u32)
        .max(2)
        & !1;
    let to = gst::Caps::builder("image/jpeg")
        .field("width", w as i32)
        .field("height", h as i32)
        .build();
    let out = gst_video::convert_sample(sample, &to, gst::ClockTime::from_seconds(5))
        .map_err(|e| format!("JPEG: {e}"))?;
    let buf = out.buffer().ok_or("JPEG: no bytes")?;
    let map = buf.map_readable().map_err(|e| format!("JPEG: {e}"))?;
    Ok(Still {
        jpeg: map.as_slice().to_vec(),
        width: w,
        height: h,
    })
}

/// A still of the camera with no session running it. Blocking, up to a few
/// seconds.
pub fn camera_once(v: &Video, width: u32) -> Result<Still, String> {
    let p = runner::launch(&pipeline::camera_still(v))?;
    let sink = p
        .by_name(pipeline::STILL_SINK)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink in the still's pipeline")?;
    p.set_state(gst::State::Playing)
        .map_err(|_| "the camera does not start (is it plugged in?)".to_owned())?;
    // A camera's first frames are dark while its exposure settles: the
    // fifth, or the last one before it stops giving any.
    let mut sample = None;
    for _ in 0..5 {
        match sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
            Some(s) => sample = Some(s),
            None => break,
        }
    }
    let _ = p.set_state(gst::State::Null);
    let s = sample.ok_or("the camera gave no picture in 5 s (is it plugged in?)")?;
    jpeg(&s, width)
}

/// The last frame a sink showed (`last-sample`), if it keeps one.
pub fn last_frame(sink: &gst::Element) -> Option<gst::Sample> {
    sink.find_property("last-sample")?;
    sink.property::<Option<gst::Sample>>("last-sample")
}
