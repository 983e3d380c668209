//! Sample sources for a device's stream: each yields one sample at a time with an optional label,
//! from memory reused between calls (nothing grows with the stream).
//!
//! | source | yields | label |
//! |---|---|---|
//! | [`ImageSetSource`] | images of an [`ImageSet`] (IDX files, a class folder) in a given order | from the set, if it has labels |
//! | [`FolderWatch`] | PNG/JPEG files appearing in one folder, in file-name order | none |
//! | [`RawFrames`] | fixed-size raw u8 frames from any reader (stdin) | none |
//! | [`CsvWindows`] | sliding windows over sensor rows from CSV (a file or stdin) | optional last column, the label of the window's last row |
//! | [`SensorSetSource`] | windows of a [`SensorSet`] (NPY) | from the set, if it has labels |
//!
//! Every source implements [`Source`]: `next()` returns `Ok(Some(sample))`, `Ok(None)` when
//! nothing is available (end of a file, or no new file yet for [`FolderWatch`]), or a typed
//! error. A source does not skip bad input silently: a truncated frame, a malformed CSV row or
//! an unreadable image is an error naming where it is, and the source stays usable (the next call
//! moves past it), so a caller can count and skip.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crate::data::image::Geometry;
use crate::data::{ImageSet, SensorSet};
use crate::error::{Error, Result};

/// The samples a source yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleShape {
    /// u8 images, HWC.
    Image(Geometry),
    /// f32 windows, time-major.
    Window {
        /// Time steps per window.
        steps: usize,
        /// Channels per step.
        channels: usize,
    },
}

/// One sample, borrowed from the source until the next call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample<'a> {
    /// Image bytes, HWC.
    Image(&'a [u8]),
    /// Sensor values, time-major.
    Window(&'a [f32]),
}

/// A sample and its label, if the source knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labeled<'a> {
    /// The sample.
    pub sample: Sample<'a>,
    /// Its label.
    pub label: Option<u32>,
}

/// A stream of samples.
pub trait Source {
    /// The shape of every sample.
    fn shape(&self) -> SampleShape;

    /// The next sample, `Ok(None)` if none is available now.
    ///
    /// # Errors
    /// Source-specific: see each implementation.
    fn next(&mut self) -> Result<Option<Labeled<'_>>>;
}

/// Images of an in-memory [`ImageSet`] in a given order.
#[derive(Debug, Clone)]
pub struct ImageSetSource<'a> {
    set: &'a ImageSet,
    order: Vec<usize>,
    pos: usize,
}

impl<'a> ImageSetSource<'a> {
    /// Yields `set`'s images in `order` (indices into the set).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] if an index is not in the set.
    pub fn new(set: &'a ImageSet, order: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = order.iter().find(|&&i| i >= set.len()) {
            return Err(Error::IndexOutOfRange {
                op: "ImageSetSource::new",
                index: bad,
                len: set.len(),
            });
        }
        Ok(ImageSetSource { set, order, pos: 0 })
    }
}

impl Source for ImageSetSource<'_> {
    fn shape(&self) -> SampleShape {
        SampleShape::Image(Geometry {
            height: self.set.height,
            width: self.set.width,
            channels: self.set.channels,
        })
    }

    fn next(&mut self) -> Result<Option<Labeled<'_>>> {
        let Some(&i) = self.order.get(self.pos) else { return Ok(None) };
        self.pos += 1;
        let label = self.set.labels.as_ref().map(|l| l[i]);
        Ok(Some(Labeled { sample: Sample::Image(self.set.image(i)), label }))
    }
}

/// Windows of an in-memory [`SensorSet`] in a given order.
#[derive(Debug, Clone)]
pub struct SensorSetSource<'a> {
    set: &'a SensorSet,
    order: Vec<usize>,
    pos: usize,
}

impl<'a> SensorSetSource<'a> {
    /// Yields `set`'s windows in `order`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] if an index is not in the set.
    pub fn new(set: &'a SensorSet, order: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = order.iter().find(|&&i| i >= set.len()) {
            return Err(Error::IndexOutOfRange {
                op: "SensorSetSource::new",
                index: bad,
                len: set.len(),
            });
        }
        Ok(SensorSetSource { set, order, pos: 0 })
    }
}

impl Source for SensorSetSource<'_> {
    fn shape(&self) -> SampleShape {
        SampleShape::Window { steps: self.set.steps, channels: self.set.channels }
    }

    fn next(&mut self) -> Result<Option<Labeled<'_>>> {
        let Some(&i) = self.order.get(self.pos) else { return Ok(None) };
        self.pos += 1;
        let label = self.set.labels.as_ref().map(|l| l[i]);
        Ok(Some(Labeled { sample: Sample::Window(self.set.window(i)), label }))
    }
}

/// New PNG/JPEG files in one folder, consumed in file-name order and resized to a fixed size.
///
/// Memory stays bounded: the watch remembers only the name of the last file it consumed and
/// yields files whose names sort after it, so name new frames so that they sort in arrival order
/// (e.g. a zero-padded counter or an ISO timestamp). A file that sorts before the last consumed
/// name is ignored. `next` lists the folder once per call when no file is pending.
#[derive(Debug)]
pub struct FolderWatch {
    dir: PathBuf,
    geometry: Geometry,
    last: Option<PathBuf>,
    pixels: Vec<u8>,
}

impl FolderWatch {
    /// Watches `dir`, resizing every image to `height x width` RGB.
    ///
    /// # Errors
    /// [`Error::Io`] if `dir` is not a readable folder.
    pub fn new(dir: impl AsRef<Path>, height: usize, width: usize) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let geometry = Geometry { height, width, channels: 3 };
        Ok(FolderWatch { dir, geometry, last: None, pixels: Vec::with_capacity(geometry.len()) })
    }

    /// The last file consumed, if any.
    pub fn last(&self) -> Option<&Path> {
        self.last.as_deref()
    }

    fn next_path(&self) -> Result<Option<PathBuf>> {
        let mut best: Option<PathBuf> = None;
        for e in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let p = e.map_err(|e| Error::io(&self.dir, e))?.path();
            let is_image = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"));
            let newer = self.last.as_ref().is_none_or(|l| p > *l);
            if is_image && newer && best.as_ref().is_none_or(|b| p < *b) {
                best = Some(p);
            }
        }
        Ok(best)
    }
}

impl Source for FolderWatch {
    fn shape(&self) -> SampleShape {
        SampleShape::Image(self.geometry)
    }

    /// # Errors
    /// [`Error::Io`] / [`Error::BadImage`] for an unreadable or undecodable file; the file counts
    /// as consumed, so the next call moves on.
    fn next(&mut self) -> Result<Option<Labeled<'_>>> {
        let Some(path) = self.next_path()? else { return Ok(None) };
        self.last = Some(path.clone());
        self.pixels.clear();
        crate::data::folder::read_image_into(
            &path,
            self.geometry.height,
            self.geometry.width,
            &mut self.pixels,
        )?;
        Ok(Some(Labeled { sample: Sample::Image(&self.pixels), label: None }))
    }
}

/// Fixed-size raw u8 frames (HWC) read back to back from a reader, e.g. a camera pipe on stdin.
#[derive(Debug)]
pub struct RawFrames<R> {
    reader: R,
    geometry: Geometry,
    frame: Vec<u8>,
    frames: u64,
}

impl<R: Read> RawFrames<R> {
    /// Reads frames of `geometry` from `reader`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an empty geometry.
    pub fn new(reader: R, geometry: Geometry) -> Result<Self> {
        if geometry.is_empty() {
            return Err(Error::InvalidParam { name: "geometry", reason: "empty frame".into() });
        }
        Ok(RawFrames { reader, geometry, frame: vec![0; geometry.len()], frames: 0 })
    }
}

impl<R: Read> Source for RawFrames<R> {
    fn shape(&self) -> SampleShape {
        SampleShape::Image(self.geometry)
    }

    /// # Errors
    /// [`Error::BadData`] if the input ends inside a frame (the bytes read are reported).
    fn next(&mut self) -> Result<Option<Labeled<'_>>> {
        let mut filled = 0;
        while filled < self.frame.len() {
            match self.reader.read(&mut self.frame[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("<raw frames>", e)),
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        if filled < self.frame.len() {
            return Err(Error::bad_data(
                "<raw frames>",
                format!(
                    "truncated frame {}: {filled} of {} bytes ({:?})",
                    self.frames,
                    self.frame.len(),
                    self.geometry
                ),
            ));
        }
        self.frames += 1;
        Ok(Some(Labeled { sample: Sample::Image(&self.frame), label: None }))
    }
}

/// Sliding windows over sensor rows read as CSV: `channels` comma-separated floats per line,
/// plus a last integer column when `labeled`. A header line (first line with a non-numeric
/// field) is skipped; blank lines are skipped. A window of `steps` rows is emitted every
/// `stride` rows once `steps` rows have been read; its label is the label of its last row.
#[derive(Debug)]
pub struct CsvWindows<R> {
    reader: R,
    channels: usize,
    steps: usize,
    stride: usize,
    labeled: bool,
    ring: Vec<f32>,
    window: Vec<f32>,
    line: String,
    line_no: u64,
    rows: u64,
    last_label: Option<u32>,
}

impl<R: BufRead> CsvWindows<R> {
    /// Windows of `steps x channels`, one every `stride` rows.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] if `steps`, `channels` or `stride` is zero.
    pub fn new(
        reader: R,
        steps: usize,
        channels: usize,
        stride: usize,
        labeled: bool,
    ) -> Result<Self> {
        for (name, v) in [("steps", steps), ("channels", channels), ("stride", stride)] {
            if v == 0 {
                return Err(Error::InvalidParam { name, reason: "must be >= 1".into() });
            }
        }
        Ok(CsvWindows {
            reader,
            channels,
            steps,
            stride,
            labeled,
            ring: vec![0.0; steps * channels],
            window: vec![0.0; steps * channels],
            line: String::with_capacity(256),
            line_no: 0,
            rows: 0,
            last_label: None,
        })
    }

    /// Parses `self.line` into the ring at row `self.rows`.
    fn push_row(&mut self) -> Result<bool> {
        let line = self.line.trim();
        if line.is_empty() {
            return Ok(false);
        }
        let want = self.channels + usize::from(self.labeled);
        let bad = |reason: String| Error::bad_data(format!("<csv line {}>", self.line_no), reason);
        let mut fields = line.split(',').map(str::trim);
        let slot = (self.rows as usize % self.steps) * self.channels;
        for c in 0..self.channels {
            let f = fields.next().ok_or_else(|| bad(format!("expected {want} fields")))?;
            let v: f32 = match f.parse() {
                Ok(v) => v,
                Err(_) if self.rows == 0 && self.line_no == 1 => return Ok(false), // header
                Err(_) => return Err(bad(format!("field {} = {f:?} is not a number", c + 1))),
            };
            if !v.is_finite() {
                return Err(bad(format!("field {} is {v}", c + 1)));
            }
            self.ring[slot + c] = v;
        }
        if self.labeled {
            let f = fields.next().ok_or_else(|| bad(format!("expected {want} fields")))?;
            match f.parse::<u32>() {
                Ok(l) => self.last_label = Some(l),
                Err(_) if self.rows == 0 && self.line_no == 1 => return Ok(false),
                Err(_) => return Err(bad(format!("label {f:?} is not a class index"))),
            }
        }
        if fields.next().is_some() {
            return Err(bad(format!("more than {want} fields")));
        }
        self.rows += 1;
        Ok(true)
    }
}

impl<R: BufRead> Source for CsvWindows<R> {
    fn shape(&self) -> SampleShape {
        SampleShape::Window { steps: self.steps, channels: self.channels }
    }

    /// # Errors
    /// [`Error::BadData`] naming the line for a row with the wrong field count, a non-number, a
    /// NaN or infinity (the row is dropped; the next call continues with the next line);
    /// [`Error::Io`] if the reader fails.
    fn next(&mut self) -> Result<Option<Labeled<'_>>> {
        loop {
            self.line.clear();
            let n = self.reader.read_line(&mut self.line).map_err(|e| Error::io("<csv>", e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if !self.push_row()? {
                continue;
            }
            let rows = self.rows as usize;
            if rows >= self.steps && (rows - self.steps).is_multiple_of(self.stride) {
                // Unroll the ring so that the oldest row comes first.
                let start = rows % self.steps;
                let c = self.channels;
                for t in 0..self.steps {
                    let src = ((start + t) % self.steps) * c;
                    self.window[t * c..(t + 1) * c].copy_from_slice(&self.ring[src..src + c]);
                }
                return Ok(Some(Labeled {
                    sample: Sample::Window(&self.window),
                    label: self.last_label,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_windows_slide_with_stride_and_label_of_last_row() {
        let csv = "ax,ay,label\n1,10,0\n2,20,0\n3,30,1\n4,40,1\n5,50,2\n";
        let mut s = CsvWindows::new(csv.as_bytes(), 3, 2, 2, true).unwrap();
        let w = s.next().unwrap().unwrap();
        assert_eq!(w.sample, Sample::Window(&[1.0, 10.0, 2.0, 20.0, 3.0, 30.0]));
        assert_eq!(w.label, Some(1));
        let w = s.next().unwrap().unwrap();
        assert_eq!(w.sample, Sample::Window(&[3.0, 30.0, 4.0, 40.0, 5.0, 50.0]));
        assert_eq!(w.label, Some(2));
        assert!(s.next().unwrap().is_none());
    }

    #[test]
    fn csv_bad_rows_are_errors_naming_the_line_and_the_stream_goes_on() {
        let csv = "1,2\n3,nan\n4,x\n5\n6,7\n8,9\n";
        let mut s = CsvWindows::new(csv.as_bytes(), 2, 2, 1, false).unwrap();
        let e = s.next().unwrap_err();
        assert!(e.to_string().contains("line 2") && e.to_string().contains("NaN"), "{e}");
        assert!(s.next().unwrap_err().to_string().contains("line 3"));
        assert!(s.next().unwrap_err().to_string().contains("line 4"));
        let w = s.next().unwrap().unwrap();
        assert_eq!(w.sample, Sample::Window(&[1.0, 2.0, 6.0, 7.0]));
    }

    #[test]
    fn raw_frames_read_whole_frames_and_report_a_truncated_one() {
        let g = Geometry { height: 2, width: 2, channels: 1 };
        let bytes: Vec<u8> = (0..10).collect();
        let mut s = RawFrames::new(&bytes[..], g).unwrap();
        assert_eq!(s.next().unwrap().unwrap().sample, Sample::Image(&[0, 1, 2, 3]));
        assert_eq!(s.next().unwrap().unwrap().sample, Sample::Image(&[4, 5, 6, 7]));
        let e = s.next().unwrap_err();
        assert!(e.to_string().contains("truncated frame 2: 2 of 4"), "{e}");
        assert!(s.next().unwrap().is_none());
    }

    #[test]
    fn folder_watch_picks_up_new_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("edge-ssl-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let save = |name: &str, v: u8| {
            image::RgbImage::from_pixel(3, 3, image::Rgb([v, v, v])).save(dir.join(name)).unwrap();
        };
        let mut w = FolderWatch::new(&dir, 2, 2).unwrap();
        assert!(w.next().unwrap().is_none());
        save("0002.png", 20);
        save("0001.png", 10);
        assert_eq!(w.next().unwrap().unwrap().sample, Sample::Image(&[10; 12]));
        assert_eq!(w.next().unwrap().unwrap().sample, Sample::Image(&[20; 12]));
        assert!(w.next().unwrap().is_none());
        std::fs::write(dir.join("0003.png"), b"not a png").unwrap();
        save("0004.png", 40);
        assert!(matches!(w.next(), Err(Error::BadImage { .. })));
        assert_eq!(w.next().unwrap().unwrap().sample, Sample::Image(&[40; 12]));
        assert_eq!(w.last().unwrap().file_name().unwrap(), "0004.png");
    }

    #[test]
    fn set_sources_yield_in_order_with_labels() {
        let set = ImageSet {
            height: 1,
            width: 1,
            channels: 1,
            pixels: vec![5, 6, 7],
            labels: Some(vec![0, 1, 2]),
            class_names: vec![],
        };
        let mut s = ImageSetSource::new(&set, vec![2, 0]).unwrap();
        let a = s.next().unwrap().unwrap();
        assert_eq!((a.sample, a.label), (Sample::Image(&[7]), Some(2)));
        assert_eq!(s.next().unwrap().unwrap().label, Some(0));
        assert!(s.next().unwrap().is_none());
        assert!(ImageSetSource::new(&set, vec![3]).is_err());
    }
}
