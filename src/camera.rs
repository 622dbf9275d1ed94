//! The camera through V4L2 (the `v4l` crate): which of its modes to capture
//! in, and PTZ presets (pan/tilt/zoom absolute controls) stored by name.
//!
//! Mode choice is pure ([`choose_mode`]): the configured size and rate in a
//! raw format when the camera delivers it at that rate, otherwise in MJPEG
//! (USB 2 cameras reach 720p30 only compressed), otherwise the closest it
//! has. Presets live in sled (`camera_presets`), so they survive restarts,
//! and the default preset is recalled when a session starts.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// V4L2 control ids (linux/v4l2-controls.h, camera class).
pub const CID_PAN_ABSOLUTE: u32 = 0x009a_0908;
pub const CID_TILT_ABSOLUTE: u32 = 0x009a_0909;
pub const CID_ZOOM_ABSOLUTE: u32 = 0x009a_090d;

/// One way the camera can deliver pictures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    /// V4L2 fourcc, e.g. "YUYV", "MJPG", "NV12".
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    /// Best frame rate at this size.
    pub fps: f64,
}

impl Mode {
    fn raw(&self) -> bool {
        matches!(
            self.fourcc.as_str(),
            "YUYV" | "NV12" | "YU12" | "UYVY" | "I420"
        )
    }

    fn mjpeg(&self) -> bool {
        matches!(self.fourcc.as_str(), "MJPG" | "JPEG")
    }

    /// The caps and decoder to put after `v4l2src` for this mode.
    pub fn gst_caps(&self) -> Option<String> {
        let fps = self.fps.round().max(1.0) as u32;
        let size = format!(
            "width={},height={},framerate={fps}/1",
            self.width, self.height
        );
        if self.mjpeg() {
            return Some(format!("image/jpeg,{size} ! jpegdec"));
        }
        let fmt = match self.fourcc.as_str() {
            "YUYV" => "YUY2",
            "NV12" => "NV12",
            "YU12" | "I420" => "I420",
            "UYVY" => "UYVY",
            _ => return None,
        };
        Some(format!("video/x-raw,format={fmt},{size}"))
    }
}

/// The mode to capture in for `width`x`height` at `fps`.
pub fn choose_mode(modes: &[Mode], width: u32, height: u32, fps: u32) -> Option<Mode> {
    let fps = f64::from(fps);
    let exact = |m: &&Mode| m.width == width && m.height == height && m.fps + 0.5 >= fps;
    // Exactly what was asked: raw first (no decode), then MJPEG.
    if let Some(m) = modes.iter().filter(exact).find(|m| m.raw()) {
        return Some(m.clone());
    }
    if let Some(m) = modes.iter().filter(exact).find(|m| m.mjpeg()) {
        return Some(m.clone());
    }
    // Otherwise the usable mode closest in size that keeps the rate, then any.
    let usable: Vec<&Mode> = modes.iter().filter(|m| m.raw() || m.mjpeg()).collect();
    let dist = |m: &Mode| {
        (i64::from(m.width) * i64::from(m.height) - i64::from(width) * i64::from(height)).abs()
    };
    usable
        .iter()
        .filter(|m| m.fps + 0.5 >= fps)
        .min_by_key(|m| dist(m))
        .or_else(|| usable.iter().min_by_key(|m| dist(m)))
        .map(|m| (*m).clone())
}

/// Every mode a V4L2 camera offers (discrete sizes and intervals).
pub fn probe_modes(path: &Path) -> std::io::Result<Vec<Mode>> {
    use v4l::video::Capture;
    let dev = v4l::Device::with_path(path)?;
    let mut out = Vec::new();
    for f in dev.enum_formats()? {
        let fourcc = f.fourcc.str().unwrap_or("????").to_owned();
        for size in dev.enum_framesizes(f.fourcc)? {
            for d in size.size.to_discrete() {
                let best = dev
                    .enum_frameintervals(f.fourcc, d.width, d.height)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| match i.interval {
                        v4l::frameinterval::FrameIntervalEnum::Discrete(fr) => fr,
                        v4l::frameinterval::FrameIntervalEnum::Stepwise(s) => s.min,
                    })
                    .filter(|fr| fr.numerator > 0)
                    .map(|fr| f64::from(fr.denominator) / f64::from(fr.numerator))
                    .fold(0.0, f64::max);
                out.push(Mode {
                    fourcc: fourcc.clone(),
                    width: d.width,
                    height: d.height,
                    fps: best,
                });
            }
        }
    }
    Ok(out)
}

/// A camera position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ptz {
    pub pan: Option<i64>,
    pub tilt: Option<i64>,
    pub zoom: Option<i64>,
}

/// The controls PTZ needs, behind a trait so presets are tested without a camera.
pub trait Controls {
    fn get(&mut self, id: u32) -> std::io::Result<Option<i64>>;
    fn set(&mut self, id: u32, value: i64) -> std::io::Result<()>;
}

/// A V4L2 device's controls.
pub struct V4l2Controls(v4l::Device);

impl V4l2Controls {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self(v4l::Device::with_path(path)?))
    }
}

impl Controls for V4l2Controls {
    fn get(&mut self, id: u32) -> std::io::Result<Option<i64>> {
        match self.0.control(id) {
            Ok(c) => Ok(match c.value {
                v4l::control::Value::Integer(v) => Some(v),
                _ => None,
            }),
            // EINVAL: the camera has no such control (not every camera pans).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set(&mut self, id: u32, value: i64) -> std::io::Result<()> {
        self.0.set_control(v4l::control::Control {
            id,
            value: v4l::control::Value::Integer(value),
        })
    }
}

pub fn read_ptz(c: &mut dyn Controls) -> std::io::Result<Ptz> {
    Ok(Ptz {
        pan: c.get(CID_PAN_ABSOLUTE)?,
        tilt: c.get(CID_TILT_ABSOLUTE)?,
        zoom: c.get(CID_ZOOM_ABSOLUTE)?,
    })
}

pub fn apply_ptz(c: &mut dyn Controls, p: &Ptz) -> std::io::Result<()> {
    for (id, v) in [
        (CID_PAN_ABSOLUTE, p.pan),
        (CID_TILT_ABSOLUTE, p.tilt),
        (CID_ZOOM_ABSOLUTE, p.zoom),
    ] {
        if let Some(v) = v {
            c.set(id, v)?;
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("preset store: {0}")]
    Store(#[from] sled::Error),
    #[error("no preset named '{0}'; `diemcau camera presets` lists them")]
    Unknown(String),
    #[error("preset names are 1 to 32 letters, digits, '-' or '_'; got '{0}'")]
    BadName(String),
    #[error("the camera has no pan, tilt or zoom controls")]
    NoPtz,
    #[error("camera {path}: {source}")]
    Camera {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the configured camera is not a V4L2 device; presets need one")]
    NotV4l2,
}

/// Named positions, in sled.
#[derive(Clone)]
pub struct Presets {
    tree: sled::Tree,
    /// The state directory, where every change is also snapshotted
    /// ([`crate::util::snapshot_tree`]): presets outlive a store sled
    /// cannot reopen.
    snapshot: Option<std::path::PathBuf>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Presets {
    pub fn open(db: &sled::Db) -> Result<Self, PresetError> {
        Ok(Self {
            tree: db.open_tree(crate::core::trees::CAMERA_PRESETS)?,
            snapshot: None,
        })
    }

    /// Snapshot every change into `state_dir` too.
    pub fn with_snapshot(mut self, state_dir: &std::path::Path) -> Self {
        self.snapshot = Some(state_dir.to_owned());
        self
    }

    fn changed(&self) {
        if let Some(dir) = &self.snapshot {
            if let Err(e) = crate::util::snapshot_tree(dir, &self.tree) {
                tracing::error!("camera presets snapshot not written: {e}");
            }
        }
    }

    /// Store the camera's current position under `name`.
    pub fn save(&self, name: &str, c: &mut dyn Controls) -> Result<Ptz, PresetError> {
        if !valid_name(name) {
            return Err(PresetError::BadName(name.into()));
        }
        let p = read_ptz(c).map_err(|source| PresetError::Camera {
            path: String::new(),
            source,
        })?;
        if p == Ptz::default() {
            return Err(PresetError::NoPtz);
        }
        self.tree
            .insert(name, serde_json::to_vec(&p).expect("positions serialise"))?;
        self.tree.flush()?;
        self.changed();
        Ok(p)
    }

    /// Move the camera to the preset `name`.
    pub fn recall(&self, name: &str, c: &mut dyn Controls) -> Result<Ptz, PresetError> {
        let p = self
            .get(name)?
            .ok_or_else(|| PresetError::Unknown(name.into()))?;
        apply_ptz(c, &p).map_err(|source| PresetError::Camera {
            path: String::new(),
            source,
        })?;
        Ok(p)
    }

    pub fn get(&self, name: &str) -> Result<Option<Ptz>, PresetError> {
        Ok(self
            .tree
            .get(name)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    pub fn list(&self) -> Result<Vec<(String, Ptz)>, PresetError> {
        let mut out = Vec::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            if let Ok(p) = serde_json::from_slice(&v) {
                out.push((String::from_utf8_lossy(&k).into_owned(), p));
            }
        }
        Ok(out)
    }

    pub fn delete(&self, name: &str) -> Result<bool, PresetError> {
        let had = self.tree.remove(name)?.is_some();
        self.tree.flush()?;
        self.changed();
        Ok(had)
    }
}

/// Open the configured camera's controls.
pub fn open_controls(source: &crate::config::VideoSource) -> Result<V4l2Controls, PresetError> {
    match source {
        crate::config::VideoSource::V4l2(path) => {
            V4l2Controls::open(path).map_err(|source| PresetError::Camera {
                path: path.display().to_string(),
                source,
            })
        }
        _ => Err(PresetError::NotV4l2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn m(f: &str, w: u32, h: u32, fps: f64) -> Mode {
        Mode {
            fourcc: f.into(),
            width: w,
            height: h,
            fps,
        }
    }

    #[test]
    fn raw_when_it_reaches_the_rate_else_mjpeg() {
        // A typical USB 2 webcam: raw 720p only at 10 fps, MJPEG at 30.
        let modes = [
            m("YUYV", 1280, 720, 10.0),
            m("MJPG", 1280, 720, 30.0),
            m("YUYV", 640, 480, 30.0),
        ];
        assert_eq!(
            choose_mode(&modes, 1280, 720, 30),
            Some(m("MJPG", 1280, 720, 30.0))
        );
        assert_eq!(
            choose_mode(&modes, 1280, 720, 10),
            Some(m("YUYV", 1280, 720, 10.0))
        );
        assert_eq!(
            choose_mode(&modes, 640, 480, 30),
            Some(m("YUYV", 640, 480, 30.0))
        );
    }

    #[test]
    fn closest_size_that_keeps_the_rate() {
        let modes = [
            m("MJPG", 1920, 1080, 30.0),
            m("MJPG", 640, 360, 30.0),
            m("H264", 1280, 720, 30.0),
        ];
        assert_eq!(
            choose_mode(&modes, 1280, 720, 30),
            Some(m("MJPG", 640, 360, 30.0))
        );
        assert_eq!(choose_mode(&[], 1280, 720, 30), None);
    }

    #[test]
    fn caps_for_gstreamer() {
        assert_eq!(
            m("MJPG", 1280, 720, 30.0).gst_caps().unwrap(),
            "image/jpeg,width=1280,height=720,framerate=30/1 ! jpegdec"
        );
        assert_eq!(
            m("YUYV", 640, 480, 29.97).gst_caps().unwrap(),
            "video/x-raw,format=YUY2,width=640,height=480,framerate=30/1"
        );
        assert!(m("H264", 640, 480, 30.0).gst_caps().is_none());
    }

    /// A camera that has only the controls in its map (a fake: no camera
    /// can be plugged into the test machine).
    struct Fake(HashMap<u32, i64>);

    impl Controls for Fake {
        fn get(&mut self, id: u32) -> std::io::Result<Option<i64>> {
            Ok(self.0.get(&id).copied())
        }
        fn set(&mut self, id: u32, v: i64) -> std::io::Result<()> {
            match self.0.get_mut(&id) {
                Some(x) => {
                    *x = v;
                    Ok(())
                }
                None => Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
            }
        }
    }

    #[test]
    fn presets_save_recall_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let p = Presets::open(&db).unwrap();
        let mut cam = Fake(
            [
                (CID_PAN_ABSOLUTE, 3600),
                (CID_TILT_ABSOLUTE, -1800),
                (CID_ZOOM_ABSOLUTE, 100),
            ]
            .into(),
        );
        p.save("ban-tiep", &mut cam).unwrap();
        cam.0.insert(CID_PAN_ABSOLUTE, 0);
        cam.0.insert(CID_ZOOM_ABSOLUTE, 400);
        let got = p.recall("ban-tiep", &mut cam).unwrap();
        assert_eq!(got.pan, Some(3600));
        assert_eq!(cam.0[&CID_PAN_ABSOLUTE], 3600);
        assert_eq!(cam.0[&CID_ZOOM_ABSOLUTE], 100);
        assert_eq!(p.list().unwrap().len(), 1);
        assert!(matches!(
            p.recall("nope", &mut cam),
            Err(PresetError::Unknown(_))
        ));
        assert!(matches!(
            p.save("bad name", &mut cam),
            Err(PresetError::BadName(_))
        ));
        assert!(p.delete("ban-tiep").unwrap());
        assert!(p.list().unwrap().is_empty());
    }

    #[test]
    fn a_camera_without_ptz_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let p = Presets::open(&db).unwrap();
        let mut cam = Fake(HashMap::new());
        assert!(matches!(p.save("x", &mut cam), Err(PresetError::NoPtz)));
    }
}
