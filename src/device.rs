//! A [`Learner`] that owns its [`Backbone`]: what firmware calls with raw frames or sensor
//! windows. It resizes images to the backbone's input, embeds, and passes the embedding on.
//!
//! # Examples
//! ```no_run
//! use edge_ssl::device::{Device, Frame};
//! use edge_ssl::data::image::Geometry;
//! use edge_ssl::learner::LearnerParams;
//! use edge_ssl::{Backbone, BackboneSpec, models};
//!
//! let backbone = Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1))?;
//! let params = LearnerParams::new(backbone.embedding_dim(), 10);
//! let mut device = Device::new(backbone, &params)?;
//! let g = Geometry { height: 480, width: 640, channels: 3 };
//! let frame = vec![0u8; g.len()]; // from the camera
//! device.observe(Frame::Image { pixels: &frame, geometry: g })?;
//! let p = device.predict(Frame::Image { pixels: &frame, geometry: g })?;
//! println!("class {} (confidence {:.2}, strange: {})", p.class, p.confidence, p.gated);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use std::path::Path;
use std::str::FromStr;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

use crate::augment::image::{ImageAugParams, ImageAugmenter};
use crate::augment::sensor::{SensorAugParams, SensorAugmenter};
use crate::backbone::{Backbone, BackboneSpec, Engine, Input, InputKind, PointwiseConv};
use crate::data::image::{Geometry, resize_into};
use crate::error::{Error, Result};
use crate::learner::{Learner, LearnerParams, Outcome, Prediction};
use crate::models;

/// What an image backbone hands the learner: its last feature map or its pooled embedding.
///
/// Parsed from `"auto"`, `"map"` or `"embedding"` (the command's `--rows`, a C config file's
/// `rows`); the discriminants are stable (`0`, `1`, `2`) so a C config can carry the choice as
/// an integer ([`Rows::from_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum Rows {
    /// [`Rows::Map`] when the model has the shipped camera model's layout and the engine is
    /// tract ([`models::camera_head_conv`]), else [`Rows::Embedding`]. The default.
    #[default]
    Auto = 0,
    /// The model's last feature map ([`models::CAMERA_LAST_BLOCK`], 320 x 4 x 4 at 112): the
    /// learner pools it with the model's own head convolution, kept frozen, and builds the
    /// bank's graph on the maps ([`LearnerParams::with_map_graph`], the best camera
    /// configuration in EVALUATION.md). Needs tract (onnxruntime runs only to a graph's
    /// declared outputs).
    Map = 1,
    /// The model's pooled `embedding` output (1280 values for the shipped camera model);
    /// always for sensor windows.
    Embedding = 2,
}

impl Rows {
    /// Every choice.
    pub const ALL: [Rows; 3] = [Rows::Auto, Rows::Map, Rows::Embedding];

    /// The name `--rows` and config files use.
    pub fn name(self) -> &'static str {
        match self {
            Rows::Auto => "auto",
            Rows::Map => "map",
            Rows::Embedding => "embedding",
        }
    }

    /// The choice with this stable code, for C configs.
    pub fn from_code(code: u32) -> Option<Rows> {
        Rows::ALL.into_iter().find(|r| *r as u32 == code)
    }

    /// How `model` on `engine` feeds the learner with these rows; sensor windows (`images`
    /// false) are always embeddings.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`rows`) for maps of sensor windows, of a model without the
    /// camera model's head convolution, or on onnxruntime; [`Error::ModelRejected`] if `model`
    /// is not an ONNX file.
    pub fn feed(self, images: bool, model: &Path, engine: Engine) -> Result<Feed> {
        let bad = |reason: String| Error::InvalidParam { name: "rows", reason };
        match (self, images) {
            (Rows::Embedding, _) | (Rows::Auto, false) => Ok(Feed(None)),
            (Rows::Map, false) => {
                Err(bad("the sensor model has no spatial map: its rows are embeddings".into()))
            }
            (Rows::Auto, true) => Ok(Feed(models::camera_head_conv(model, engine)?)),
            (Rows::Map, true) => match models::camera_head_conv(model, engine)? {
                Some(conv) => Ok(Feed(Some(conv))),
                None => Err(bad(format!(
                    "maps need the tract engine and a model with the shipped camera model's \
                     head convolution ({:?}); {} on {engine} has none: use embedding rows",
                    models::CAMERA_HEAD_CONV,
                    model.display()
                ))),
            },
        }
    }
}

impl std::fmt::Display for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rows {
    type Err = Error;

    /// # Errors
    /// [`Error::InvalidParam`] naming `rows` for anything but `auto`, `map`, `embedding`.
    fn from_str(s: &str) -> Result<Rows> {
        let t = s.trim().to_ascii_lowercase();
        Rows::ALL.into_iter().find(|r| r.name() == t).ok_or_else(|| Error::InvalidParam {
            name: "rows",
            reason: format!("unknown rows {t:?}: expected auto, map or embedding"),
        })
    }
}

/// How a backbone feeds the learner ([`Rows::feed`]): the head convolution the learner pools
/// maps with, or embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed(Option<PointwiseConv>);

impl Feed {
    /// True for map rows.
    pub fn is_map(&self) -> bool {
        self.0.is_some()
    }

    /// `spec` with the output this feed needs ([`models::CAMERA_LAST_BLOCK`] for maps).
    pub fn spec(&self, spec: BackboneSpec) -> BackboneSpec {
        if self.is_map() { spec.with_output(models::CAMERA_LAST_BLOCK) } else { spec }
    }

    /// The learner's defaults for rows of `dim` values and `n_classes` classes
    /// ([`LearnerParams::with_map_graph`] for maps).
    ///
    /// # Errors
    /// As [`LearnerParams::with_map_graph`] (`dim` not a whole number of maps).
    pub fn params(&self, dim: usize, n_classes: usize) -> Result<LearnerParams> {
        let p = LearnerParams::new(dim, n_classes);
        match &self.0 {
            Some(conv) => p.with_map_graph(conv.clone()),
            None => Ok(p),
        }
    }

    /// `"map"` or `"embedding"`.
    pub fn name(&self) -> &'static str {
        if self.is_map() { Rows::Map.name() } else { Rows::Embedding.name() }
    }
}

/// One raw sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame<'a> {
    /// An image of any size, HWC u8 (1, 3 or 4 channels); resized to the backbone's input.
    Image {
        /// The pixels.
        pixels: &'a [u8],
        /// Their geometry.
        geometry: Geometry,
    },
    /// A sensor window of exactly the backbone's `steps x channels`, time-major.
    Window(&'a [f32]),
}

/// Input-space strong views: the augmenter for the backbone's input and its output buffer.
#[derive(Debug)]
enum Views {
    Image { aug: ImageAugmenter, strong: Vec<u8> },
    Sensor { aug: SensorAugmenter, strong: Vec<f32> },
}

/// A backbone and a learner, with the buffers between them allocated once.
#[derive(Debug)]
pub struct Device {
    backbone: Backbone,
    learner: Learner,
    rgb: Vec<u8>,
    embedding: Vec<f32>,
    views: Option<Views>,
    strong_embedding: Vec<f32>,
    seed: u64,
}

impl Device {
    /// Builds the learner from `params` on top of `backbone`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] if `params.dim` is not the backbone's embedding dimension; as
    /// [`LearnerParams::build`].
    pub fn new(backbone: Backbone, params: &LearnerParams) -> Result<Self> {
        Self::with_learner(backbone, params, |p| p.build())
    }

    /// Like [`Device::new`], resuming the learner from a state file (see [`Learner::resume`]).
    ///
    /// # Errors
    /// As [`Device::new`] and [`Learner::resume`].
    pub fn resume(
        backbone: Backbone,
        params: &LearnerParams,
        path: impl AsRef<Path>,
    ) -> Result<Self> {
        Self::with_learner(backbone, params, |p| Learner::resume(p, path.as_ref()))
    }

    fn with_learner(
        backbone: Backbone,
        params: &LearnerParams,
        make: impl FnOnce(&LearnerParams) -> Result<Learner>,
    ) -> Result<Self> {
        if params.dim != backbone.embedding_dim() {
            return Err(Error::InvalidParam {
                name: "dim",
                reason: format!(
                    "learner dim {} but the backbone embeds {} values",
                    params.dim,
                    backbone.embedding_dim()
                ),
            });
        }
        let rgb = match backbone.spec().input {
            InputKind::Image { height, width } => vec![0u8; height * width * 3],
            InputKind::Sensor { .. } => Vec::new(),
        };
        let embedding = vec![0f32; backbone.embedding_dim()];
        Ok(Device {
            learner: make(params)?,
            backbone,
            rgb,
            strong_embedding: vec![0f32; embedding.len()],
            embedding,
            views: None,
            seed: params.seed,
        })
    }

    /// Also learns from input-space strong views: every unlabeled frame is augmented with the
    /// strong view of its kind (images: 2 RandAugment ops + Cutout after flip/translate; sensor
    /// windows: 2 of magnitude warp, time warp, permutation, channel dropout, 3-D rotation) with
    /// the default [`ImageAugParams`] / [`SensorAugParams`], embedded (one more backbone pass)
    /// and given to [`Learner::observe_with_view`].
    ///
    /// # Errors
    /// As the augmenters' constructors (cannot fail for the shipped backbones' inputs).
    pub fn with_strong_views(mut self) -> Result<Self> {
        self.views = Some(match self.backbone.spec().input {
            InputKind::Image { height, width } => Views::Image {
                aug: ImageAugmenter::new(
                    ImageAugParams::default().check()?,
                    Geometry { height, width, channels: 3 },
                )?,
                strong: vec![0u8; height * width * 3],
            },
            InputKind::Sensor { steps, channels } => Views::Sensor {
                aug: SensorAugmenter::new(SensorAugParams::default().check()?, steps, channels)?,
                strong: vec![0f32; steps * channels],
            },
        });
        Ok(self)
    }

    /// The learner.
    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    /// The learner, e.g. to checkpoint it.
    pub fn learner_mut(&mut self) -> &mut Learner {
        &mut self.learner
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Embeds `frame` into the device's embedding buffer and returns it.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the frame does not fit the backbone (a window of another
    /// size, an image for a sensor backbone, a pixel buffer that does not match its geometry);
    /// [`Error::NonFinite`] for NaN in a window; [`Error::Inference`] if tract fails.
    pub fn embed(&mut self, frame: Frame<'_>) -> Result<&[f32]> {
        match (frame, &self.backbone.spec().input) {
            (Frame::Image { pixels, geometry }, &InputKind::Image { height, width }) => {
                resize_into(
                    pixels,
                    geometry,
                    &mut self.rgb,
                    Geometry { height, width, channels: 3 },
                )?;
                self.backbone.embed(Input::U8(&self.rgb), &mut self.embedding)?;
            }
            (Frame::Window(w), InputKind::Sensor { .. }) => {
                self.backbone.embed(Input::F32(w), &mut self.embedding)?;
            }
            (frame, input) => {
                return Err(Error::ShapeMismatch {
                    op: "Device::embed",
                    expected: format!("a sample for {input:?}"),
                    got: match frame {
                        Frame::Image { .. } => "an image".into(),
                        Frame::Window(_) => "a sensor window".into(),
                    },
                });
            }
        }
        Ok(&self.embedding)
    }

    /// Learns from a labelled frame (see [`Learner::observe_labeled`]).
    ///
    /// # Errors
    /// As [`Device::embed`] and [`Learner::observe_labeled`]; the learner is untouched then.
    pub fn observe_labeled(&mut self, frame: Frame<'_>, label: u32) -> Result<()> {
        self.embed(frame)?;
        self.learner.observe_labeled(&self.embedding, label)
    }

    /// Learns from an unlabeled frame (see [`Learner::observe`]).
    ///
    /// # Errors
    /// As [`Device::embed`] and [`Learner::observe`]; the learner is untouched then.
    pub fn observe(&mut self, frame: Frame<'_>) -> Result<Outcome> {
        self.embed(frame)?;
        let c = self.learner.counters();
        // A view RNG derived from (seed, samples seen), like the learner's: resumable.
        let n = c.labeled + c.unlabeled;
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ 0x005e_ed0f_u64 ^ n.wrapping_mul(0xd134_2543_de82_ef95),
        );
        match (&mut self.views, frame) {
            (None, _) => self.learner.observe(&self.embedding),
            (Some(Views::Image { aug, strong }), _) => {
                aug.strong_into(&self.rgb, strong, &mut rng)?;
                self.backbone.embed(Input::U8(strong), &mut self.strong_embedding)?;
                self.learner.observe_with_view(&self.embedding, &self.strong_embedding)
            }
            (Some(Views::Sensor { aug, strong }), Frame::Window(w)) => {
                aug.strong_into(w, strong, &mut rng)?;
                self.backbone.embed(Input::F32(strong), &mut self.strong_embedding)?;
                self.learner.observe_with_view(&self.embedding, &self.strong_embedding)
            }
            (Some(Views::Sensor { .. }), Frame::Image { .. }) => {
                unreachable!("Device::embed rejected an image for a sensor backbone")
            }
        }
    }

    /// Predicts a frame's class and whether it is strange (see [`Learner::predict`]).
    ///
    /// # Errors
    /// As [`Device::embed`].
    pub fn predict(&mut self, frame: Frame<'_>) -> Result<Prediction> {
        self.embed(frame)?;
        self.learner.predict(&self.embedding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_names_codes_and_feeds() {
        for r in Rows::ALL {
            assert_eq!(r.name().parse::<Rows>().unwrap(), r);
            assert_eq!(Rows::from_code(r as u32), Some(r));
        }
        assert_eq!(" MAP ".parse::<Rows>().unwrap(), Rows::Map);
        assert!(matches!("video".parse::<Rows>(), Err(Error::InvalidParam { name: "rows", .. })));
        assert_eq!(Rows::from_code(3), None);
        let (camera, sensor) = (Path::new(models::CAMERA_INT8), Path::new(models::SENSOR_INT8));
        // the camera model on tract: maps, 320 channels in, 1280 out
        let feed = Rows::Auto.feed(true, camera, Engine::Tract).unwrap();
        assert!(feed.is_map());
        let p = feed.params(5120, 10).unwrap();
        assert_eq!((p.dim, p.feature_dim(), p.graph_dim()), (5120, 1280, 5120));
        assert_eq!(p.graph_vote, crate::learner::MAP_GRAPH_VOTE);
        assert_eq!(p.propagation, crate::propagate::PropagationParams::maps(16));
        let spec = feed.spec(BackboneSpec::efficientnet_lite0(112, 1));
        assert_eq!(spec.embedding_output, models::CAMERA_LAST_BLOCK);
        // rows that are not whole maps
        assert!(matches!(
            feed.params(1280 + 7, 10),
            Err(Error::InvalidParam { name: "adapt", .. })
        ));
        // embeddings: asked for, on onnxruntime, for sensor windows, for another model
        for (rows, images, model, engine) in [
            (Rows::Embedding, true, camera, Engine::Tract),
            (Rows::Auto, true, camera, Engine::OnnxRuntime),
            (Rows::Auto, false, camera, Engine::Tract),
            (Rows::Auto, true, sensor, Engine::Tract),
        ] {
            let feed = rows.feed(images, model, engine).unwrap();
            assert!(!feed.is_map(), "{rows} {images} {engine}");
            assert_eq!(feed.params(1280, 10).unwrap(), LearnerParams::new(1280, 10));
        }
        // maps that cannot be had are errors
        for (images, model, engine) in [
            (false, camera, Engine::Tract),
            (true, sensor, Engine::Tract),
            (true, camera, Engine::OnnxRuntime),
        ] {
            let e = Rows::Map.feed(images, model, engine).unwrap_err();
            assert!(matches!(e, Error::InvalidParam { name: "rows", .. }), "{e}");
        }
        let e = Rows::Auto.feed(true, Path::new("/nonexistent.onnx"), Engine::Tract).unwrap_err();
        assert!(!matches!(e, Error::InvalidParam { .. }), "{e}");
    }
}
