//! A fixed-capacity memory bank of embeddings for replay, gate refits and contrastive negatives.
//!
//! Capacity, embedding dim, class count and storage type are fixed by [`BankParams`]; every
//! buffer is allocated once in [`BankParams::build`] and nothing grows afterwards
//! ([`Bank::memory_bytes`] equals [`BankParams::memory_bytes`] for the bank's whole life).
//!
//! Each entry holds an embedding (f32, f16, or i8 with a per-entry scale), a class label and its
//! [`LabelKind`] (given by a user, or a pseudo-label), a confidence and an insertion tick (its
//! age is `bank.tick() - entry.inserted_at()`).
//!
//! # Eviction rule (class-balanced reservoir that favours given labels)
//! While the bank has a free slot, every valid insert is stored. When it is full:
//! - **Given label** (class `c`): always stored. The victim class `v` is the class with the most
//!   entries (ties: `c` if it is among the largest, else the lowest class index). Inside `v` the
//!   victim is its pseudo-labelled entry with the lowest confidence (ties: the oldest); if `v`
//!   holds no pseudo-labelled entry, its oldest given entry.
//! - **Pseudo-label** (class `c`): a pseudo-label never evicts a given label. Among the classes
//!   holding at least one pseudo-labelled entry, let `v` be the one with the most entries
//!   (ties: lowest index). If there is none, the insert is [`InsertOutcome::Rejected`].
//!   If `c` has fewer entries than `v`, the victim is `v`'s pseudo entry with the lowest
//!   confidence (ties: oldest): small classes grow at the expense of the largest one.
//!   Otherwise `c` is (one of) the largest: reservoir sampling inside `c` (Vitter's algorithm R,
//!   class-balanced as in CBRS, Chrysakis & Moens, ICML 2020): the sample is kept with
//!   probability `p_c / s_c`, where `p_c` is the number of pseudo entries of class `c` stored and
//!   `s_c` the number of pseudo-labelled samples of class `c` offered so far, and replaces a
//!   uniformly random pseudo entry of `c`; else it is rejected. This keeps the stored pseudo
//!   entries of a full class a uniform sample of its stream.
//!
//! Pseudo-labelled samples enter only as an [`Admitted`] value, which only the OOD gate
//! ([`crate::gate::Gate::admit`]) or an explicit, greppable opt-out ([`Admitted::ungated`])
//! produce: a gated sample cannot enter the bank as pseudo-labelled.
//!
//! # Layout
//! Slots are grouped by (class, kind) in one permutation array (`order`) split by fixed
//! segment bounds (a `heapless::Vec`), with the free slots in a last segment. Moving a slot
//! between segments costs `O(n_classes)` swaps, so an insert costs `O(n_classes)` plus, when a
//! lowest-confidence victim is needed, one scan of the victim class's pseudo entries.
//!
//! # Examples
//! ```
//! use edge_ssl::bank::{BankParams, InsertOutcome, LabelKind};
//! use edge_ssl::gate::Admitted;
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut bank = BankParams::new(4, 2, 2).build()?;
//! bank.insert_given(&[1.0, 0.0], 0, &mut rng)?;
//! bank.insert_pseudo(Admitted::ungated(&[0.0, 1.0]), 1, 0.97, &mut rng)?;
//! assert_eq!(bank.len(), 2);
//! let mut x = [0f32; 3 * 2];
//! let mut y = [0u32; 3];
//! assert_eq!(bank.sample_into(&mut rng, &mut x, &mut y)?, 3);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use rand::Rng;

use crate::error::{Error, Result, check_finite};
use crate::gate::Admitted;

/// Largest number of classes a bank (and the gate) supports; per-class counters live in
/// `heapless::Vec<_, MAX_CLASSES>`.
pub const MAX_CLASSES: usize = 64;
/// Largest capacity a bank supports (2^24 entries).
pub const MAX_CAPACITY: usize = 1 << 24;
/// Largest embedding dimension a bank supports.
pub const MAX_DIM: usize = 1 << 16;
/// Largest arena a bank may allocate (4 GiB).
pub const MAX_ARENA_BYTES: usize = 1 << 32;
/// Bytes of per-entry bookkeeping besides the embedding: metadata (16), the slot's position in
/// the permutation (4), the permutation (4), the ring of newest slots (4).
pub const ENTRY_OVERHEAD_BYTES: usize = 28;

const SEGMENTS: usize = 2 * MAX_CLASSES + 2;

/// How embeddings are stored in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// 4 bytes per value, exact.
    #[default]
    F32,
    /// IEEE 754 half precision, 2 bytes per value (round to nearest even; saturates to ±inf
    /// above 65504, which embeddings do not reach).
    F16,
    /// 1 byte per value plus one f32 scale per entry (`max |x| / 127`, symmetric rounding).
    I8,
}

impl Storage {
    /// Bytes per stored value.
    pub const fn bytes_per_value(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::F16 => 2,
            Storage::I8 => 1,
        }
    }

    /// Extra bytes per entry (the i8 scale).
    pub const fn bytes_per_entry(self) -> usize {
        match self {
            Storage::I8 => 4,
            Storage::F32 | Storage::F16 => 0,
        }
    }

    pub(crate) fn tag(self) -> u32 {
        match self {
            Storage::F32 => 0,
            Storage::F16 => 1,
            Storage::I8 => 2,
        }
    }

    pub(crate) fn from_tag(tag: u32) -> Option<Storage> {
        Some(match tag {
            0 => Storage::F32,
            1 => Storage::F16,
            2 => Storage::I8,
            _ => return None,
        })
    }
}

/// Where a label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelKind {
    /// Given by a user (ground truth as far as the device knows).
    Given,
    /// Predicted by the teacher and admitted by the OOD gate.
    Pseudo,
}

impl LabelKind {
    const fn index(self) -> usize {
        match self {
            LabelKind::Given => 0,
            LabelKind::Pseudo => 1,
        }
    }
}

/// Bank parameters. Build with [`BankParams::new`] (storage [`Storage::F32`]) and
/// [`BankParams::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankParams {
    /// Number of entries, `1..=MAX_CAPACITY`.
    pub capacity: usize,
    /// Embedding dimension, `1..=MAX_DIM`.
    pub dim: usize,
    /// Number of classes, `1..=MAX_CLASSES`.
    pub n_classes: usize,
    /// Storage type of the embeddings.
    pub storage: Storage,
}

impl BankParams {
    /// Parameters with [`Storage::F32`].
    pub const fn new(capacity: usize, dim: usize, n_classes: usize) -> Self {
        BankParams { capacity, dim, n_classes, storage: Storage::F32 }
    }

    /// The same parameters with another storage type.
    pub const fn with_storage(self, storage: Storage) -> Self {
        BankParams { storage, ..self }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] named `capacity`, `dim`, `n_classes` or `arena` if a value is out
    /// of its range or the arena would exceed [`MAX_ARENA_BYTES`].
    pub fn check(&self) -> Result<()> {
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return Err(Error::InvalidParam {
                name: "capacity",
                reason: format!("{} not in 1..={MAX_CAPACITY}", self.capacity),
            });
        }
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(Error::InvalidParam {
                name: "dim",
                reason: format!("{} not in 1..={MAX_DIM}", self.dim),
            });
        }
        if self.n_classes == 0 || self.n_classes > MAX_CLASSES {
            return Err(Error::InvalidParam {
                name: "n_classes",
                reason: format!("{} not in 1..={MAX_CLASSES}", self.n_classes),
            });
        }
        if self.arena_bytes() > MAX_ARENA_BYTES {
            return Err(Error::InvalidParam {
                name: "arena",
                reason: format!("{} bytes > {MAX_ARENA_BYTES}", self.arena_bytes()),
            });
        }
        Ok(())
    }

    /// Bytes of the embedding arena: `capacity * dim * bytes_per_value`.
    pub fn arena_bytes(&self) -> usize {
        self.capacity.saturating_mul(self.dim).saturating_mul(self.storage.bytes_per_value())
    }

    /// Exact heap + inline bytes a bank with these parameters uses, for its whole life:
    /// `capacity * (dim * bytes_per_value + storage.bytes_per_entry() + ENTRY_OVERHEAD_BYTES)`
    /// `+ size_of::<Bank>()`.
    pub fn memory_bytes(&self) -> usize {
        self.arena_bytes()
            + self.capacity * (self.storage.bytes_per_entry() + ENTRY_OVERHEAD_BYTES)
            + std::mem::size_of::<Bank>()
    }

    /// Allocates the bank (all buffers, once).
    ///
    /// # Errors
    /// As [`BankParams::check`].
    pub fn build(&self) -> Result<Bank> {
        self.check()?;
        let (cap, k) = (self.capacity, self.n_classes);
        let mut bounds = heapless::Vec::new();
        // segments 0..2k are (class, kind); segment 2k is the free list.
        for _ in 0..=2 * k {
            let _ = bounds.push(0);
        }
        let _ = bounds.push(cap as u32);
        let mut seen = heapless::Vec::new();
        for _ in 0..k {
            let _ = seen.push([0u64; 2]);
        }
        Ok(Bank {
            params: *self,
            arena: match self.storage {
                Storage::F32 => Arena::F32(vec![0f32; cap * self.dim]),
                Storage::F16 => Arena::F16(vec![0u16; cap * self.dim]),
                Storage::I8 => Arena::I8(vec![0i8; cap * self.dim]),
            },
            scales: vec![0f32; if self.storage == Storage::I8 { cap } else { 0 }],
            meta: vec![Meta::EMPTY; cap],
            order: (0..cap as u32).collect(),
            pos: (0..cap as u32).collect(),
            ring: vec![0u32; cap],
            bounds,
            seen,
            tick: 0,
            counters: BankCounters::default(),
        })
    }
}

/// The embedding arena, one typed buffer per storage type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arena {
    F32(Vec<f32>),
    F16(Vec<u16>),
    I8(Vec<i8>),
}

impl Arena {
    fn allocated_bytes(&self) -> usize {
        match self {
            Arena::F32(v) => v.capacity() * 4,
            Arena::F16(v) => v.capacity() * 2,
            Arena::I8(v) => v.capacity(),
        }
    }
}

/// Per-slot metadata (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Meta {
    /// Insertion tick (the bank's tick when stored).
    pub(crate) seq: u64,
    pub(crate) confidence: f32,
    pub(crate) label: u16,
    /// 0 = given, 1 = pseudo.
    pub(crate) kind: u8,
    /// 0 = free, 1 = occupied.
    pub(crate) occupied: u8,
}

const _: () = assert!(std::mem::size_of::<Meta>() == 16);

impl Meta {
    const EMPTY: Meta = Meta { seq: 0, confidence: 0.0, label: 0, kind: 0, occupied: 0 };
}

/// Running totals of what happened to inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BankCounters {
    /// Inserts stored (into a free slot or over a victim).
    pub stored: u64,
    /// Pseudo-labelled inserts rejected by the eviction rule.
    pub rejected: u64,
    /// Given entries evicted.
    pub evicted_given: u64,
    /// Pseudo entries evicted.
    pub evicted_pseudo: u64,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored in a free slot.
    Stored {
        /// The slot.
        slot: usize,
    },
    /// Stored over an evicted entry.
    Replaced {
        /// The slot.
        slot: usize,
        /// Class of the evicted entry.
        evicted_class: u32,
        /// Kind of the evicted entry.
        evicted_kind: LabelKind,
    },
    /// Not stored (reservoir draw lost, or no pseudo entry left to evict).
    Rejected,
}

impl InsertOutcome {
    /// The slot the entry went to, `None` if it was not stored.
    pub fn slot(&self) -> Option<usize> {
        match *self {
            InsertOutcome::Stored { slot } | InsertOutcome::Replaced { slot, .. } => Some(slot),
            InsertOutcome::Rejected => None,
        }
    }
}

/// A fixed-capacity memory bank. See the [module docs](self) for the eviction rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Bank {
    pub(crate) params: BankParams,
    /// `capacity * dim` stored values.
    pub(crate) arena: Arena,
    /// One scale per slot for [`Storage::I8`], else empty.
    pub(crate) scales: Vec<f32>,
    pub(crate) meta: Vec<Meta>,
    /// Permutation of slots grouped by segment.
    pub(crate) order: Vec<u32>,
    /// Inverse of `order`.
    pub(crate) pos: Vec<u32>,
    /// `ring[t % capacity]` = slot stored at tick `t` (valid while `meta[slot].seq == t`).
    pub(crate) ring: Vec<u32>,
    /// `2 * n_classes + 2` segment bounds.
    pub(crate) bounds: heapless::Vec<u32, SEGMENTS>,
    /// Per class: samples offered so far, `[given, pseudo]`.
    pub(crate) seen: heapless::Vec<[u64; 2], MAX_CLASSES>,
    /// Number of stores so far (the clock for ages and the ring).
    pub(crate) tick: u64,
    pub(crate) counters: BankCounters,
}

/// A read-only view of one occupied entry.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    bank: &'a Bank,
    slot: usize,
}

impl<'a> EntryRef<'a> {
    /// The slot index.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The class label.
    pub fn label(&self) -> u32 {
        u32::from(self.bank.meta[self.slot].label)
    }

    /// Given or pseudo.
    pub fn kind(&self) -> LabelKind {
        kind_of(self.bank.meta[self.slot].kind)
    }

    /// Confidence (1.0 for given labels).
    pub fn confidence(&self) -> f32 {
        self.bank.meta[self.slot].confidence
    }

    /// The bank tick at which the entry was stored.
    pub fn inserted_at(&self) -> u64 {
        self.bank.meta[self.slot].seq
    }

    /// Stores since this entry was stored (0 for the newest).
    pub fn age(&self) -> u64 {
        self.bank.tick - 1 - self.bank.meta[self.slot].seq
    }

    /// The stored embedding when the storage is [`Storage::F32`] (zero-copy), else `None`.
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        self.bank.row_f32(self.slot)
    }

    /// Decodes the embedding into `out`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `out.len() != dim`.
    pub fn embedding_into(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.bank.params.dim {
            return Err(shape("EntryRef::embedding_into", self.bank.params.dim, out.len()));
        }
        self.bank.decode(self.slot, out);
        Ok(())
    }
}

fn kind_of(k: u8) -> LabelKind {
    if k == 0 { LabelKind::Given } else { LabelKind::Pseudo }
}

fn shape(op: &'static str, expected: usize, got: usize) -> Error {
    Error::ShapeMismatch {
        op,
        expected: format!("{expected} values"),
        got: format!("{got} values"),
    }
}

impl Bank {
    /// The parameters.
    pub fn params(&self) -> &BankParams {
        &self.params
    }

    /// Number of occupied entries.
    pub fn len(&self) -> usize {
        self.bounds[2 * self.params.n_classes] as usize
    }

    /// True if no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if every slot is occupied.
    pub fn is_full(&self) -> bool {
        self.len() == self.params.capacity
    }

    /// Number of stores so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Insert statistics.
    pub fn counters(&self) -> BankCounters {
        self.counters
    }

    /// Entries of `class` with label kind `kind` (0 for an out-of-range class).
    pub fn count(&self, class: u32, kind: LabelKind) -> usize {
        let c = class as usize;
        if c >= self.params.n_classes {
            return 0;
        }
        self.seg_len(2 * c + kind.index())
    }

    /// Entries of `class`, both kinds.
    pub fn class_count(&self, class: u32) -> usize {
        self.count(class, LabelKind::Given) + self.count(class, LabelKind::Pseudo)
    }

    /// Samples of `class` and `kind` offered to the bank so far (stored or not).
    pub fn seen(&self, class: u32, kind: LabelKind) -> u64 {
        self.seen.get(class as usize).map_or(0, |s| s[kind.index()])
    }

    /// Bytes this bank uses now, measured from its buffers' actual allocations (capacities, not
    /// lengths) plus `size_of::<Bank>()`. Always equals [`BankParams::memory_bytes`].
    pub fn memory_bytes(&self) -> usize {
        self.arena.allocated_bytes()
            + self.scales.capacity() * 4
            + self.meta.capacity() * std::mem::size_of::<Meta>()
            + (self.order.capacity() + self.pos.capacity() + self.ring.capacity()) * 4
            + std::mem::size_of::<Bank>()
    }

    /// The entry in `slot`, if occupied.
    pub fn entry(&self, slot: usize) -> Option<EntryRef<'_>> {
        (slot < self.params.capacity && self.meta[slot].occupied == 1)
            .then_some(EntryRef { bank: self, slot })
    }

    /// Replaces the embedding of the occupied entry in `slot`, keeping its label, kind,
    /// confidence and age (the learner recomputes embeddings when its features adapt, see
    /// [`crate::adapt`]).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`slot`) if the slot is empty or out of range;
    /// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad embedding.
    pub fn set_embedding(&mut self, slot: usize, x: &[f32]) -> Result<()> {
        if self.entry(slot).is_none() {
            return Err(Error::InvalidParam {
                name: "slot",
                reason: format!("slot {slot} holds no entry"),
            });
        }
        if x.len() != self.params.dim {
            return Err(shape("Bank::set_embedding", self.params.dim, x.len()));
        }
        check_finite("Bank::set_embedding", x)?;
        self.encode(slot, x);
        Ok(())
    }

    /// All occupied entries, grouped by class then kind (no particular order inside a group).
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.order[..self.len()].iter().map(|&s| EntryRef { bank: self, slot: s as usize })
    }

    /// The newest entries, newest first, at most `capacity` of them (ring order of stores,
    /// skipping entries evicted since). Use it as a MoCo-style queue of negatives.
    pub fn newest(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        let cap = self.params.capacity as u64;
        let start = self.tick.saturating_sub(cap);
        (start..self.tick).rev().filter_map(move |t| {
            let slot = self.ring[(t % cap) as usize] as usize;
            let m = &self.meta[slot];
            (m.occupied == 1 && m.seq == t).then_some(EntryRef { bank: self, slot })
        })
    }

    /// Copies the embeddings of the `out.len() / dim` newest entries into `out` (row-major,
    /// newest first), without allocating; returns how many rows were written (fewer if the
    /// bank holds fewer recent entries).
    ///
    /// # Shapes
    /// `out`: `[n, dim]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `out.len()` is not a multiple of `dim`.
    pub fn newest_into(&self, out: &mut [f32]) -> Result<usize> {
        let d = self.params.dim;
        if !out.len().is_multiple_of(d) {
            return Err(Error::ShapeMismatch {
                op: "Bank::newest_into",
                expected: format!("[n, {d}] values"),
                got: format!("{} values", out.len()),
            });
        }
        let mut n = 0;
        for (e, row) in self.newest().zip(out.chunks_exact_mut(d)) {
            self.decode(e.slot, row);
            n += 1;
        }
        Ok(n)
    }

    /// Stores a user-labelled embedding (always stored; see the eviction rule).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != dim`; [`Error::NonFinite`] for NaN/inf;
    /// [`Error::InvalidParam`] (`class`) if `class >= n_classes`.
    pub fn insert_given<R: Rng + ?Sized>(
        &mut self,
        x: &[f32],
        class: u32,
        rng: &mut R,
    ) -> Result<InsertOutcome> {
        self.insert(x, class, LabelKind::Given, 1.0, rng)
    }

    /// Offers a pseudo-labelled embedding admitted by the OOD gate.
    ///
    /// # Errors
    /// As [`Bank::insert_given`], plus [`Error::InvalidParam`] (`confidence`) if `confidence`
    /// is not in `[0, 1]`.
    pub fn insert_pseudo<R: Rng + ?Sized>(
        &mut self,
        sample: Admitted<'_>,
        class: u32,
        confidence: f32,
        rng: &mut R,
    ) -> Result<InsertOutcome> {
        if !(0.0..=1.0).contains(&confidence) {
            return Err(Error::InvalidParam {
                name: "confidence",
                reason: format!("{confidence} not in [0, 1]"),
            });
        }
        self.insert(sample.embedding(), class, LabelKind::Pseudo, confidence, rng)
    }

    fn insert<R: Rng + ?Sized>(
        &mut self,
        x: &[f32],
        class: u32,
        kind: LabelKind,
        confidence: f32,
        rng: &mut R,
    ) -> Result<InsertOutcome> {
        let (d, k) = (self.params.dim, self.params.n_classes);
        if x.len() != d {
            return Err(shape("Bank::insert", d, x.len()));
        }
        check_finite("Bank::insert", x)?;
        let c = class as usize;
        if c >= k {
            return Err(Error::InvalidParam {
                name: "class",
                reason: format!("class {class} >= n_classes {k}"),
            });
        }
        self.seen[c][kind.index()] += 1;
        let target = 2 * c + kind.index();
        if !self.is_full() {
            let slot = self.order[self.bounds[2 * k] as usize] as usize;
            self.store(slot, target, x, class, kind, confidence);
            return Ok(InsertOutcome::Stored { slot });
        }
        let victim = match kind {
            LabelKind::Given => Some(self.victim_in(self.largest_class(c))),
            LabelKind::Pseudo => match self.largest_pseudo_class() {
                None => None,
                Some(v) if self.class_len(c) < self.class_len(v) => Some(self.victim_in(v)),
                Some(_) => {
                    // reservoir inside class c: keep with probability p_c / s_c
                    let p = self.seg_len(2 * c + 1);
                    if p > 0 && rng.random_range(0..self.seen[c][1]) < p as u64 {
                        let s = self.bounds[2 * c + 1] as usize + rng.random_range(0..p);
                        Some(self.order[s] as usize)
                    } else {
                        None
                    }
                }
            },
        };
        let Some(slot) = victim else {
            self.counters.rejected += 1;
            return Ok(InsertOutcome::Rejected);
        };
        let old = self.meta[slot];
        match kind_of(old.kind) {
            LabelKind::Given => self.counters.evicted_given += 1,
            LabelKind::Pseudo => self.counters.evicted_pseudo += 1,
        }
        self.store(slot, target, x, class, kind, confidence);
        Ok(InsertOutcome::Replaced {
            slot,
            evicted_class: u32::from(old.label),
            evicted_kind: kind_of(old.kind),
        })
    }

    fn seg_len(&self, s: usize) -> usize {
        (self.bounds[s + 1] - self.bounds[s]) as usize
    }

    fn class_len(&self, c: usize) -> usize {
        self.seg_len(2 * c) + self.seg_len(2 * c + 1)
    }

    /// The class with the most entries; ties prefer `prefer`, then the lowest index.
    fn largest_class(&self, prefer: usize) -> usize {
        let mut best = 0;
        for c in 1..self.params.n_classes {
            if self.class_len(c) > self.class_len(best) {
                best = c;
            }
        }
        if self.class_len(prefer) == self.class_len(best) { prefer } else { best }
    }

    /// The class with the most entries among those holding a pseudo entry (ties: lowest index).
    fn largest_pseudo_class(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for c in 0..self.params.n_classes {
            if self.seg_len(2 * c + 1) == 0 {
                continue;
            }
            if best.is_none_or(|b| self.class_len(c) > self.class_len(b)) {
                best = Some(c);
            }
        }
        best
    }

    /// Victim slot in class `v`: lowest-confidence (then oldest) pseudo entry; if none, the
    /// oldest given entry (callers inserting a pseudo-label only pass classes holding a pseudo
    /// entry).
    fn victim_in(&self, v: usize) -> usize {
        let seg = |s: usize| &self.order[self.bounds[s] as usize..self.bounds[s + 1] as usize];
        let pseudo = seg(2 * v + 1);
        if let Some(&s) = pseudo.iter().min_by(|&&a, &&b| {
            let (ma, mb) = (&self.meta[a as usize], &self.meta[b as usize]);
            ma.confidence.total_cmp(&mb.confidence).then(ma.seq.cmp(&mb.seq))
        }) {
            return s as usize;
        }
        let given = seg(2 * v);
        given.iter().min_by_key(|&&s| self.meta[s as usize].seq).map_or(0, |&s| s as usize)
    }

    fn store(
        &mut self,
        slot: usize,
        target: usize,
        x: &[f32],
        class: u32,
        kind: LabelKind,
        confidence: f32,
    ) {
        self.move_slot(slot, target);
        self.encode(slot, x);
        self.meta[slot] = Meta {
            seq: self.tick,
            confidence,
            label: class as u16,
            kind: kind.index() as u8,
            occupied: 1,
        };
        let cap = self.params.capacity as u64;
        self.ring[(self.tick % cap) as usize] = slot as u32;
        self.tick += 1;
        self.counters.stored += 1;
    }

    fn segment_of(&self, p: usize) -> usize {
        // bounds is sorted; find s with bounds[s] <= p < bounds[s+1] (skipping empty segments)
        let n = self.bounds.len() - 1;
        let mut s = 0;
        while s + 1 < n && self.bounds[s + 1] as usize <= p {
            s += 1;
        }
        s
    }

    /// Moves `slot` into segment `to` by swapping it across the boundaries in between.
    fn move_slot(&mut self, slot: usize, to: usize) {
        let mut p = self.pos[slot] as usize;
        let mut s = self.segment_of(p);
        while s > to {
            // swap with the first element of segment s, then shrink s from the left
            let first = self.bounds[s] as usize;
            self.swap_pos(p, first);
            p = first;
            self.bounds[s] += 1;
            s -= 1;
        }
        while s < to {
            // swap with the last element of segment s, then shrink s from the right
            let last = self.bounds[s + 1] as usize - 1;
            self.swap_pos(p, last);
            p = last;
            self.bounds[s + 1] -= 1;
            s += 1;
        }
    }

    fn swap_pos(&mut self, a: usize, b: usize) {
        self.order.swap(a, b);
        self.pos[self.order[a] as usize] = a as u32;
        self.pos[self.order[b] as usize] = b as u32;
    }

    fn row_f32(&self, slot: usize) -> Option<&[f32]> {
        let d = self.params.dim;
        match &self.arena {
            Arena::F32(v) => Some(&v[slot * d..(slot + 1) * d]),
            Arena::F16(_) | Arena::I8(_) => None,
        }
    }

    fn encode(&mut self, slot: usize, x: &[f32]) {
        let d = self.params.dim;
        let r = slot * d..(slot + 1) * d;
        match &mut self.arena {
            Arena::F32(v) => v[r].copy_from_slice(x),
            Arena::F16(v) => v[r].iter_mut().zip(x).for_each(|(o, &x)| *o = f32_to_f16(x)),
            Arena::I8(v) => self.scales[slot] = encode_i8(x, &mut v[r]),
        }
    }

    /// Decodes slot `slot` into `out` (`dim` values).
    pub(crate) fn decode(&self, slot: usize, out: &mut [f32]) {
        let d = self.params.dim;
        let r = slot * d..(slot + 1) * d;
        match &self.arena {
            Arena::F32(v) => out.copy_from_slice(&v[r]),
            Arena::F16(v) => out.iter_mut().zip(&v[r]).for_each(|(o, &h)| *o = f16_to_f32(h)),
            Arena::I8(v) => decode_i8(&v[r], self.scales[slot], out),
        }
    }

    /// Draws `out.len()` occupied slots uniformly with replacement, without allocating;
    /// returns how many were drawn (`0` if the bank is empty, else `out.len()`).
    pub fn sample_slots<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [u32]) -> usize {
        let n = self.len();
        if n == 0 {
            return 0;
        }
        for o in out.iter_mut() {
            *o = self.order[rng.random_range(0..n)];
        }
        out.len()
    }

    /// Draws a replay batch of `labels.len()` entries uniformly with replacement and decodes
    /// their embeddings into `x` and labels into `labels`, without allocating. Returns the
    /// number of rows written: `0` if the bank is empty, else `labels.len()`.
    ///
    /// # Shapes
    /// `x`: `[n, dim]`, `labels`: `[n]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != labels.len() * dim`.
    pub fn sample_into<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        x: &mut [f32],
        labels: &mut [u32],
    ) -> Result<usize> {
        let n = self.len();
        self.fill_rows("Bank::sample_into", n, x, labels, &mut [], || {
            self.order[rng.random_range(0..n)] as usize
        })
    }

    /// Checks the shapes, then decodes `labels.len()` slots drawn by `pick` (called only when
    /// `available > 0`) into `x` and `labels`, and the slots into `slots` unless it is empty.
    fn fill_rows(
        &self,
        op: &'static str,
        available: usize,
        x: &mut [f32],
        labels: &mut [u32],
        slots: &mut [u32],
        mut pick: impl FnMut() -> usize,
    ) -> Result<usize> {
        let d = self.params.dim;
        if x.len() != labels.len() * d {
            return Err(shape(op, labels.len() * d, x.len()));
        }
        if !slots.is_empty() && slots.len() != labels.len() {
            return Err(shape(op, labels.len(), slots.len()));
        }
        if available == 0 {
            return Ok(0);
        }
        for (i, (row, y)) in x.chunks_exact_mut(d).zip(labels.iter_mut()).enumerate() {
            let slot = pick();
            self.decode(slot, row);
            *y = u32::from(self.meta[slot].label);
            if let Some(s) = slots.get_mut(i) {
                *s = slot as u32;
            }
        }
        Ok(labels.len())
    }

    /// Number of entries of `kind`, all classes.
    pub fn kind_len(&self, kind: LabelKind) -> usize {
        (0..self.params.n_classes).map(|c| self.seg_len(2 * c + kind.index())).sum()
    }

    /// Like [`Bank::sample_into`], restricted to entries of `kind` (e.g. replay of the given
    /// labels only): uniform over those entries, with replacement, without allocating. Returns
    /// `0` if the bank holds no entry of `kind`, else `labels.len()`.
    ///
    /// # Shapes
    /// `x`: `[n, dim]`, `labels`: `[n]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != labels.len() * dim`.
    pub fn sample_kind_into<R: Rng + ?Sized>(
        &self,
        kind: LabelKind,
        rng: &mut R,
        x: &mut [f32],
        labels: &mut [u32],
    ) -> Result<usize> {
        self.sample_kind_slots_into(kind, rng, x, labels, &mut [])
    }

    /// Like [`Bank::sample_kind_into`], also writing the slot of each row into `slots` (empty,
    /// or one per row), so that per-entry state kept beside the bank (e.g. propagated labels,
    /// see [`crate::propagate`]) can be looked up.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != labels.len() * dim` or `slots` is neither empty
    /// nor `labels.len()` long.
    pub fn sample_kind_slots_into<R: Rng + ?Sized>(
        &self,
        kind: LabelKind,
        rng: &mut R,
        x: &mut [f32],
        labels: &mut [u32],
        slots: &mut [u32],
    ) -> Result<usize> {
        let total = self.kind_len(kind);
        self.fill_rows("Bank::sample_kind_slots_into", total, x, labels, slots, || {
            let mut r = rng.random_range(0..total);
            let mut seg = kind.index();
            while r >= self.seg_len(seg) {
                r -= self.seg_len(seg);
                seg += 2;
            }
            self.order[self.bounds[seg] as usize + r] as usize
        })
    }
}

/// Codes `x` as `round(x / scale)` in `out` with `scale = max |x| / 127` (1 for a zero row);
/// returns the scale. [`Storage::I8`]'s coding.
pub(crate) fn encode_i8(x: &[f32], out: &mut [i8]) -> f32 {
    let scale = i8_scale(x);
    for (o, &x) in out.iter_mut().zip(x) {
        *o = quantize_i8(x, scale);
    }
    scale
}

fn i8_scale(x: &[f32]) -> f32 {
    let m = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    if m > 0.0 { m / 127.0 } else { 1.0 }
}

fn quantize_i8(x: f32, scale: f32) -> i8 {
    (x / scale).round().clamp(-127.0, 127.0) as i8
}

/// `x` as [`encode_i8`] then [`decode_i8`] return it, without a byte buffer.
pub(crate) fn round_trip_i8(x: &[f32], out: &mut [f32]) {
    let scale = i8_scale(x);
    out.iter_mut().zip(x).for_each(|(o, &x)| *o = f32::from(quantize_i8(x, scale)) * scale);
}

/// The inverse of [`encode_i8`].
pub(crate) fn decode_i8(q: &[i8], scale: f32, out: &mut [f32]) {
    out.iter_mut().zip(q).for_each(|(o, &q)| *o = f32::from(q) * scale);
}

/// Converts to IEEE 754 binary16 bits, rounding to nearest even.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) {
        r += 1; // a carry into the exponent is the correct rounding (up to inf)
    }
    sign | r as u16
}

/// Converts IEEE 754 binary16 bits to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    if exp == 0 {
        let v = man as f32 * (1.0 / 16_777_216.0); // man * 2^-24
        return if sign != 0 { -v } else { v };
    }
    let bits = if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_kind_draws_only_that_kind() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut bank = BankParams::new(8, 1, 3).build().unwrap();
        bank.insert_given(&[1.0], 2, &mut rng).unwrap();
        bank.insert_given(&[2.0], 0, &mut rng).unwrap();
        for v in 0..4 {
            bank.insert_pseudo(Admitted::ungated(&[10.0 + v as f32]), 1, 0.9, &mut rng).unwrap();
        }
        assert_eq!((bank.kind_len(LabelKind::Given), bank.kind_len(LabelKind::Pseudo)), (2, 4));
        let (mut x, mut y) = ([0f32; 64], [0u32; 64]);
        assert_eq!(bank.sample_kind_into(LabelKind::Given, &mut rng, &mut x, &mut y).unwrap(), 64);
        assert!(x.iter().zip(&y).all(|(&v, &l)| (v, l) == (1.0, 2) || (v, l) == (2.0, 0)));
        assert!(y.contains(&0) && y.contains(&2), "both given entries drawn");
        bank.sample_kind_into(LabelKind::Pseudo, &mut rng, &mut x, &mut y).unwrap();
        assert!(x.iter().zip(&y).all(|(&v, &l)| v >= 10.0 && l == 1));
        let empty = BankParams::new(4, 1, 2).build().unwrap();
        assert_eq!(empty.sample_kind_into(LabelKind::Given, &mut rng, &mut x, &mut y).unwrap(), 0);
    }

    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn check_invariants(b: &Bank) {
        let k = b.params.n_classes;
        for s in 0..=2 * k {
            for p in b.bounds[s] as usize..b.bounds[s + 1] as usize {
                let slot = b.order[p] as usize;
                assert_eq!(b.pos[slot] as usize, p);
                let m = &b.meta[slot];
                if s == 2 * k {
                    assert_eq!(m.occupied, 0);
                } else {
                    assert_eq!(
                        (m.occupied, usize::from(m.label), usize::from(m.kind)),
                        (1, s / 2, s % 2)
                    );
                }
            }
        }
    }

    #[test]
    fn capacity_must_be_in_range() {
        let r = BankParams::new(0, 4, 2).build();
        assert!(matches!(r, Err(Error::InvalidParam { name: "capacity", .. })));
        let r = BankParams::new(MAX_CAPACITY + 1, 1, 2).check();
        assert!(matches!(r, Err(Error::InvalidParam { name: "capacity", .. })));
    }

    #[test]
    fn dim_must_be_in_range() {
        let r = BankParams::new(4, 0, 2).build();
        assert!(matches!(r, Err(Error::InvalidParam { name: "dim", .. })));
    }

    #[test]
    fn n_classes_must_be_in_range() {
        assert!(matches!(
            BankParams::new(4, 2, 0).build(),
            Err(Error::InvalidParam { name: "n_classes", .. })
        ));
        assert!(matches!(
            BankParams::new(4, 2, MAX_CLASSES + 1).build(),
            Err(Error::InvalidParam { name: "n_classes", .. })
        ));
    }

    #[test]
    fn arena_must_fit_the_limit() {
        let r = BankParams::new(MAX_CAPACITY, MAX_DIM, 2).check();
        assert!(matches!(r, Err(Error::InvalidParam { name: "arena", .. })));
    }

    #[test]
    fn insert_rejects_wrong_dim() {
        let mut b = BankParams::new(4, 3, 2).build().unwrap();
        let r = b.insert_given(&[1.0, 2.0], 0, &mut rng());
        assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn insert_rejects_nan() {
        let mut b = BankParams::new(4, 2, 2).build().unwrap();
        let r = b.insert_given(&[1.0, f32::NAN], 0, &mut rng());
        assert!(matches!(r, Err(Error::NonFinite { index: 1, .. })));
    }

    #[test]
    fn insert_rejects_class_out_of_range() {
        let mut b = BankParams::new(4, 2, 2).build().unwrap();
        let r = b.insert_given(&[1.0, 2.0], 2, &mut rng());
        assert!(matches!(r, Err(Error::InvalidParam { name: "class", .. })));
    }

    #[test]
    fn insert_rejects_confidence_out_of_range() {
        let mut b = BankParams::new(4, 2, 2).build().unwrap();
        let r = b.insert_pseudo(Admitted::ungated(&[1.0, 2.0]), 0, 1.5, &mut rng());
        assert!(matches!(r, Err(Error::InvalidParam { name: "confidence", .. })));
    }

    #[test]
    fn given_labels_evict_the_largest_class_pseudo_first() {
        let mut r = rng();
        let mut b = BankParams::new(4, 1, 2).build().unwrap();
        b.insert_given(&[0.0], 0, &mut r).unwrap();
        b.insert_pseudo(Admitted::ungated(&[1.0]), 0, 0.99, &mut r).unwrap();
        b.insert_pseudo(Admitted::ungated(&[2.0]), 0, 0.96, &mut r).unwrap();
        b.insert_given(&[3.0], 1, &mut r).unwrap();
        assert!(b.is_full());
        // class 0 is largest (3); its lowest-confidence pseudo entry (value 2.0) goes
        let out = b.insert_given(&[4.0], 1, &mut r).unwrap();
        assert!(matches!(
            out,
            InsertOutcome::Replaced { slot: 2, evicted_class: 0, evicted_kind: LabelKind::Pseudo }
        ));
        assert_eq!((b.class_count(0), b.class_count(1)), (2, 2));
        check_invariants(&b);
    }

    #[test]
    fn pseudo_labels_never_evict_given_labels() {
        let mut r = rng();
        let mut b = BankParams::new(3, 1, 2).build().unwrap();
        for v in 0..3 {
            b.insert_given(&[v as f32], 0, &mut r).unwrap();
        }
        let out = b.insert_pseudo(Admitted::ungated(&[9.0]), 1, 1.0, &mut r).unwrap();
        assert_eq!(out, InsertOutcome::Rejected);
        assert_eq!(b.count(0, LabelKind::Given), 3);
        assert_eq!(b.counters().rejected, 1);
    }

    #[test]
    fn stream_of_one_class_stays_balanced_against_others() {
        let mut r = rng();
        let mut b = BankParams::new(40, 2, 4).build().unwrap();
        for c in 0..4 {
            for _ in 0..5 {
                b.insert_given(&[c as f32, 0.0], c, &mut r).unwrap();
            }
        }
        // a flood of pseudo-labels of class 0, then some of class 1..3
        for i in 0..10_000 {
            let c = if i % 10 == 0 { 1 + (i / 10) % 3 } else { 0 };
            b.insert_pseudo(Admitted::ungated(&[c as f32, 1.0]), c, 0.97, &mut r).unwrap();
        }
        check_invariants(&b);
        for c in 0..4 {
            assert_eq!(b.count(c, LabelKind::Given), 5, "given labels kept");
            assert_eq!(b.class_count(c), 10, "balanced: class {c}");
        }
    }

    #[test]
    fn reservoir_keeps_a_uniform_sample_of_a_full_class() {
        // one class: stored pseudo entries should be a uniform sample of the stream
        let mut r = rng();
        let mut b = BankParams::new(100, 1, 1).build().unwrap();
        for i in 0..10_000 {
            b.insert_pseudo(Admitted::ungated(&[i as f32]), 0, 0.9, &mut r).unwrap();
        }
        let mean: f32 = b.iter().map(|e| e.as_f32().unwrap()[0]).sum::<f32>() / 100.0;
        assert!((mean - 5000.0).abs() < 800.0, "{mean}");
    }

    #[test]
    fn newest_view_is_in_ring_order() {
        let mut r = rng();
        let mut b = BankParams::new(4, 1, 1).build().unwrap();
        for i in 0..3 {
            b.insert_given(&[i as f32], 0, &mut r).unwrap();
        }
        let v: Vec<f32> = b.newest().map(|e| e.as_f32().unwrap()[0]).collect();
        assert_eq!(v, vec![2.0, 1.0, 0.0]);
        let mut out = [0f32; 2];
        assert_eq!(b.newest_into(&mut out).unwrap(), 2);
        assert_eq!(out, [2.0, 1.0]);
        assert_eq!(b.newest().next().unwrap().age(), 0);
        for i in 3..10 {
            b.insert_given(&[i as f32], 0, &mut r).unwrap();
        }
        let v: Vec<f32> = b.newest().map(|e| e.as_f32().unwrap()[0]).collect();
        assert_eq!(v, vec![9.0, 8.0, 7.0, 6.0]);
    }

    #[test]
    fn sample_into_draws_stored_entries() {
        let mut r = rng();
        let mut b = BankParams::new(8, 2, 2).build().unwrap();
        let mut x = [0f32; 6];
        let mut y = [0u32; 3];
        assert_eq!(b.sample_into(&mut r, &mut x, &mut y).unwrap(), 0);
        b.insert_given(&[1.0, 1.0], 1, &mut r).unwrap();
        assert_eq!(b.sample_into(&mut r, &mut x, &mut y).unwrap(), 3);
        assert_eq!((x, y), ([1.0; 6], [1; 3]));
        assert!(matches!(
            b.sample_into(&mut r, &mut x[..5], &mut y),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn set_embedding_replaces_only_the_embedding() {
        let mut r = rng();
        let mut b = BankParams::new(4, 2, 2).build().unwrap();
        let slot = b.insert_given(&[1.0, 1.0], 1, &mut r).unwrap().slot().unwrap();
        let before = b.entry(slot).map(|e| (e.label(), e.kind(), e.confidence(), e.age()));
        b.set_embedding(slot, &[2.0, -1.0]).unwrap();
        assert_eq!(b.entry(slot).unwrap().as_f32().unwrap(), &[2.0, -1.0]);
        let after = b.entry(slot).map(|e| (e.label(), e.kind(), e.confidence(), e.age()));
        assert_eq!(before, after);
        let empty = (0..4).find(|&s| s != slot).unwrap();
        assert!(matches!(b.set_embedding(empty, &[0.0; 2]), Err(Error::InvalidParam { .. })));
        assert!(matches!(b.set_embedding(slot, &[0.0; 3]), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(b.set_embedding(slot, &[f32::NAN, 0.0]), Err(Error::NonFinite { .. })));
        assert_eq!(b.entry(slot).unwrap().as_f32().unwrap(), &[2.0, -1.0], "untouched");
    }

    #[test]
    fn f16_and_i8_storage_are_close() {
        let mut r = rng();
        let x = [0.5f32, -1.25, 3.0, 1e-3, 7.77];
        for (s, tol) in [(Storage::F16, 4e-3), (Storage::I8, 7.77 / 127.0 / 2.0 + 1e-6)] {
            let mut b = BankParams::new(2, 5, 1).with_storage(s).build().unwrap();
            b.insert_given(&x, 0, &mut r).unwrap();
            let mut out = [0f32; 5];
            b.entry(0).unwrap().embedding_into(&mut out).unwrap();
            for (a, e) in out.iter().zip(&x) {
                assert!((a - e).abs() <= tol, "{s:?}: {a} vs {e}");
            }
        }
    }

    #[test]
    fn f16_conversion_matches_known_bits() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001);
        for h in [0x3c00u16, 0x0001, 0x03ff, 0x7bff, 0x8400, 0x3555] {
            assert_eq!(f32_to_f16(f16_to_f32(h)), h);
        }
    }

    #[test]
    fn memory_is_fixed_at_construction() {
        for s in [Storage::F32, Storage::F16, Storage::I8] {
            let p = BankParams::new(64, 16, 5).with_storage(s);
            let mut b = p.build().unwrap();
            assert_eq!(b.memory_bytes(), p.memory_bytes());
            let mut r = rng();
            for i in 0..5000u32 {
                let x = [i as f32 * 0.01; 16];
                if i % 7 == 0 {
                    b.insert_given(&x, i % 5, &mut r).unwrap();
                } else {
                    b.insert_pseudo(Admitted::ungated(&x), i % 5, 0.9, &mut r).unwrap();
                }
            }
            assert_eq!(b.memory_bytes(), p.memory_bytes());
        }
    }

    #[test]
    fn autotraits() {
        fn check<T: Send + Sync + Unpin>() {}
        check::<Bank>();
        check::<BankParams>();
        check::<EntryRef<'_>>();
        check::<InsertOutcome>();
    }
}
