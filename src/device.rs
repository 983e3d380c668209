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

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::augment::image::{ImageAugParams, ImageAugmenter};
use crate::augment::sensor::{SensorAugParams, SensorAugmenter};
use crate::backbone::{Backbone, Input, InputKind};
use crate::data::image::{Geometry, resize_into};
use crate::error::{Error, Result};
use crate::learner::{Learner, LearnerParams, Outcome, Prediction};

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
