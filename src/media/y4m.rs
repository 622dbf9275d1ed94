//! A raw YUV4MPEG camera file, read frame by frame straight into the
//! buffers the encoder gets.
//!
//! Tests, demos and the benches use such a clip as the camera. Through
//! `filesrc ! y4mdec` each frame was copied twice: read into 128 KiB blocks,
//! then copied out of y4mdec's adapter into a fresh 1.4 MB buffer (a malloc
//! at 720p, 30 times a second, which also left the heap larger after any
//! burst). Here a frame is read once, into memory that comes back for the
//! next frame once GStreamer lets go of it (`Spare`), as a V4L2 camera's
//! own buffers do on a real box.
//!
//! Only 4:2:0 clips whose rows need no padding are read this way
//! ([`Header::direct`]); any other clip still goes through `y4mdec`, which
//! knows every layout.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer_app as gst_app;

/// The longest stream or frame header read; real ones are under 100 bytes.
const MAX_HEADER: usize = 1024;

/// Frames kept for reuse once the pipelines let go of them: one being
/// read, one waiting in the camera pipeline, one in the encoder's queue,
/// one being encoded, one shown. More are made when all are held; those
/// beyond this many are freed when they come back.
const SPARE_FRAMES: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    #[error("cannot read the camera file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the camera file {path} is not a YUV4MPEG clip: {why}")]
    Format { path: PathBuf, why: String },
}

/// What the stream header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub fps_n: u32,
    pub fps_d: u32,
    /// The `C` tag, `420jpeg` when absent (the format's default).
    pub colorspace: String,
    /// Whether every frame is progressive (`Ip`, or no `I` tag).
    pub progressive: bool,
    /// Bytes of the header, its newline included.
    pub len: usize,
}

impl Header {
    /// Parses the stream header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header, String> {
        let end = bytes
            .iter()
            .take(MAX_HEADER)
            .position(|&b| b == b'\n')
            .ok_or("no header line in its first 1024 bytes")?;
        let line = std::str::from_utf8(&bytes[..end]).map_err(|_| "the header is not text")?;
        let mut tags = line.split(' ');
        if tags.next() != Some("YUV4MPEG2") {
            return Err("it does not start with YUV4MPEG2".into());
        }
        let (mut w, mut h, mut f) = (None, None, None);
        let (mut colorspace, mut progressive) = ("420jpeg".to_owned(), true);
        for tag in tags.filter(|t| !t.is_empty()) {
            let (key, val) = tag.split_at(1);
            match key {
                "W" => w = val.parse::<u32>().ok(),
                "H" => h = val.parse::<u32>().ok(),
                "F" => {
                    f = val
                        .split_once(':')
                        .and_then(|(n, d)| Some((n.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
                }
                "C" => colorspace = val.to_owned(),
                "I" => progressive = val == "p",
                _ => {} // aspect, comments and extensions change no byte of a frame
            }
        }
        let (width, height) = match (w, h) {
            (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
            _ => return Err("its header has no valid W and H".into()),
        };
        let (fps_n, fps_d) = match f {
            Some((n, d)) if n > 0 && d > 0 => (n, d),
            _ => return Err("its header has no valid frame rate (F)".into()),
        };
        Ok(Header {
            width,
            height,
            fps_n,
            fps_d,
            colorspace,
            progressive,
            len: end + 1,
        })
    }

    /// Reads the header of the clip at `path`.
    pub fn read(path: &Path) -> Result<Header, Y4mError> {
        let io = |source| Y4mError::Io {
            path: path.to_owned(),
            source,
        };
        let mut head = Vec::with_capacity(MAX_HEADER);
        File::open(path)
            .map_err(io)?
            .take(MAX_HEADER as u64)
            .read_to_end(&mut head)
            .map_err(io)?;
        Header::parse(&head).map_err(|why| Y4mError::Format {
            path: path.to_owned(),
            why,
        })
    }

    /// Whether a frame is laid out exactly as GStreamer's I420 at this
    /// size: 4:2:0, progressive, and rows that need no padding (GStreamer
    /// pads each row of a plane to 4 bytes, y4m packs them).
    pub fn direct(&self) -> bool {
        self.colorspace.starts_with("420")
            && self.progressive
            && self.width % 8 == 0
            && self.height % 2 == 0
    }

    /// Bytes of one frame, its `FRAME` line not included.
    pub fn frame_size(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        w * h + 2 * (w / 2) * (h / 2)
    }

    /// The caps of the frames, for the `appsrc` that plays them.
    pub fn caps(&self) -> String {
        format!(
            "video/x-raw,format=I420,width={},height={},framerate={}/{},pixel-aspect-ratio=1/1,interlace-mode=progressive",
            self.width, self.height, self.fps_n, self.fps_d
        )
    }
}

/// Feeds the clip at `path` into `src`, one frame each time it asks, with
/// times from the frame rate; end of stream at the clip's end. A clip cut
/// short in a frame ends there, with a warning.
pub fn feed(src: &gst_app::AppSrc, path: &Path, header: &Header) -> Result<(), Y4mError> {
    let io = |source| Y4mError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    file.seek_relative(header.len as i64).map_err(io)?;
    let size = header.frame_size();
    let spare = Spare::default();
    let frame_ns = 1_000_000_000u64 * u64::from(header.fps_d) / u64::from(header.fps_n);
    let name = path.display().to_string();
    let mut n = 0u64;
    let mut line = Vec::with_capacity(64);
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(
                move |src, _| match next_frame(&mut file, &mut line, &spare, size, n) {
                    Ok(Some(mut buf)) => {
                        if let Some(b) = buf.get_mut() {
                            b.set_pts(gst::ClockTime::from_nseconds(n * frame_ns));
                            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
                        }
                        n += 1;
                        let _ = src.push_buffer(buf);
                    }
                    Ok(None) => {
                        let _ = src.end_of_stream();
                    }
                    Err(why) => {
                        tracing::warn!("camera file {name}: {why}; its picture ends here");
                        let _ = src.end_of_stream();
                    }
                },
            )
            .build(),
    );
    Ok(())
}

/// The next frame, or `None` at the clip's end.
fn next_frame(
    file: &mut BufReader<File>,
    line: &mut Vec<u8>,
    spare: &Spare,
    size: usize,
    n: u64,
) -> Result<Option<gst::Buffer>, String> {
    line.clear();
    let got = file
        .by_ref()
        .take(MAX_HEADER as u64)
        .read_until(b'\n', line)
        .map_err(|e| format!("read error: {e}"))?;
    if got == 0 {
        return Ok(None);
    }
    if !line.starts_with(b"FRAME") || line.last() != Some(&b'\n') {
        return Err(format!("frame {n} does not start with a FRAME line"));
    }
    let mut frame = spare.take(size);
    // Past the few bytes the reader holds, this reads straight into the
    // frame: BufReader hands a large read to the file itself.
    file.read_exact(&mut frame.data)
        .map_err(|e| format!("the clip ends inside a frame ({e})"))?;
    Ok(Some(gst::Buffer::from_mut_slice(frame)))
}

/// Frames that came back, for the next ones. A `GstBufferPool` cannot do
/// this here: the elements after the camera (`videorate`, `intervideosrc`)
/// pass on copies of the buffer that share its memory, and a pool frees a
/// buffer whose memory is still shared when it comes back. So every frame
/// was a fresh 1.4 MB allocation, and the heap stayed larger after each
/// burst. The memory itself comes back here, when its last user lets go.
#[derive(Clone, Default)]
struct Spare(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Spare {
    fn take(&self, size: usize) -> Frame {
        let reused = self.0.lock().ok().and_then(|mut s| s.pop());
        let data = match reused {
            Some(d) if d.len() == size => d,
            _ => vec![0; size],
        };
        Frame {
            data,
            home: self.clone(),
        }
    }
}

/// One frame's bytes, back to [`Spare`] when GStreamer drops them.
struct Frame {
    data: Vec<u8>,
    home: Spare,
}

impl AsMut<[u8]> for Frame {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if let Ok(mut s) = self.home.0.lock() {
            if s.len() < SPARE_FRAMES {
                s.push(std::mem::take(&mut self.data));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer::prelude::*;

    /// A clip written by GStreamer's own y4menc plays through the reader:
    /// every frame, byte for byte, at the clip's times, then the end; a
    /// clip cut inside its last frame plays the whole ones.
    #[test]
    fn a_clip_plays_frame_by_frame_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.y4m");
        super::super::runner::run_to_eos(
            &format!(
                "videotestsrc num-buffers=6 pattern=snow ! video/x-raw,format=I420,width=64,height=48,framerate=25/1 \
                 ! y4menc ! filesink location=\"{}\"",
                clip.display()
            ),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let h = Header::read(&clip).unwrap();
        assert!(h.direct(), "{h:?}");
        let bytes = std::fs::read(&clip).unwrap();
        // Each frame as the file has it, past its FRAME line.
        let frame = |i: usize| {
            let at = h.len + i * (6 + h.frame_size()) + 6;
            bytes[at..at + h.frame_size()].to_vec()
        };
        let play = |path: &Path| {
            let p = super::super::runner::launch(&format!(
                "appsrc name=camfile format=time caps=\"{}\" ! appsink name=out sync=false",
                h.caps()
            ))
            .unwrap();
            let src = p
                .by_name("camfile")
                .unwrap()
                .downcast::<gst_app::AppSrc>()
                .unwrap();
            feed(&src, path, &h).unwrap();
            let sink = p
                .by_name("out")
                .unwrap()
                .downcast::<gst_app::AppSink>()
                .unwrap();
            p.set_state(gst::State::Playing).unwrap();
            let mut got = Vec::new();
            while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
                let b = s.buffer().unwrap();
                got.push((
                    b.pts().unwrap().mseconds(),
                    b.map_readable().unwrap().to_vec(),
                ));
            }
            assert!(sink.is_eos(), "the clip ends with the end of the stream");
            p.set_state(gst::State::Null).unwrap();
            got
        };
        let got = play(&clip);
        assert_eq!(got.len(), 6);
        for (i, (ms, data)) in got.iter().enumerate() {
            assert_eq!(*ms, i as u64 * 40);
            assert!(*data == frame(i), "frame {i} differs from the file");
        }

        let cut = dir.path().join("cut.y4m");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let got = play(&cut);
        assert_eq!(got.len(), 5, "the whole frames of a cut clip");
        assert!(got[4].1 == frame(4));
    }

    #[test]
    fn headers_are_read_with_their_defaults_and_refused_with_a_reason() {
        let line = "YUV4MPEG2 W1280 H720 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG";
        let h = Header::parse(format!("{line}\nFRAME\n").as_bytes()).unwrap();
        assert_eq!(
            h,
            Header {
                width: 1280,
                height: 720,
                fps_n: 30,
                fps_d: 1,
                colorspace: "420jpeg".into(),
                progressive: true,
                len: line.len() + 1,
            }
        );
        assert!(h.direct());
        assert_eq!(h.frame_size(), 1280 * 720 * 3 / 2);
        assert!(h.caps().contains("width=1280,height=720,framerate=30/1"));

        // No C or I: 4:2:0 progressive, as the format says.
        let h = Header::parse(b"YUV4MPEG2 W64 H48 F25:1\n").unwrap();
        assert!(h.direct() && h.colorspace == "420jpeg" && h.len == 24);
        // Layouts GStreamer pads, or other samplings: not direct.
        for s in [
            &b"YUV4MPEG2 W66 H48 F25:1\n"[..],
            b"YUV4MPEG2 W64 H47 F25:1\n",
            b"YUV4MPEG2 W64 H48 F25:1 C444\n",
            b"YUV4MPEG2 W64 H48 F25:1 It\n",
        ] {
            assert!(!Header::parse(s).unwrap().direct(), "{s:?}");
        }
        for (s, why) in [
            (&b"RIFF W64 H48 F25:1\n"[..], "YUV4MPEG2"),
            (b"YUV4MPEG2 W64 F25:1\n", "W and H"),
            (b"YUV4MPEG2 W0 H48 F25:1\n", "W and H"),
            (b"YUV4MPEG2 W64 H48 F25:0\n", "frame rate"),
            (b"YUV4MPEG2 W64 H48\n", "frame rate"),
            (b"YUV4MPEG2 W64 H48 F25:1", "no header line"),
            (&[0xff; 2000][..], "no header line"),
        ] {
            let e = Header::parse(s).unwrap_err();
            assert!(e.contains(why), "{s:?}: {e}");
        }
    }
}
