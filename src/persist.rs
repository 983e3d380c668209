//! The crash-safe, versioned, checksummed state file. The only module that knows the format.
//!
//! # Format (version 1, all integers little-endian)
//! ```text
//! header (64 bytes)
//!   0  magic              b"EDGESSL\0"
//!   8  format version     u32 = 1
//!  12  header length      u32 = 64
//!  16  embedding dim      u32
//!  20  n_classes          u32
//!  24  bank capacity      u32
//!  28  reserved           u32 = 0
//!  32  generation         u64   (save counter, chosen by the caller)
//!  40  file length        u64   (detects truncation and trailing bytes)
//!  48  section count      u32
//!  52  reserved           8 bytes = 0
//!  60  header CRC-32      u32   (over bytes 0..60)
//! sections, back to back, each
//!   0  section id         u32   (see SectionId)
//!   4  encoding           u32   (0 raw, 1 f32, 2 u64)
//!   8  payload length     u64
//!  16  section CRC-32     u32   (over bytes 0..16 and 20..64 of this header, the payload and
//!                                its zero padding)
//!  20  reserved           44 bytes = 0
//!  64  payload, zero-padded to a multiple of 64 bytes (so every payload is 64-byte aligned)
//! ```
//! CRC-32 is the IEEE polynomial (`crc32fast`). Every byte of the file is covered by a checksum
//! or checked to be zero, so a flipped bit or a cut anywhere gives a typed error, never a
//! silently different state.
//!
//! Section payloads: [`SectionId::COUNTERS`] u64s; [`SectionId::STUDENT`],
//! [`SectionId::TEACHER`], [`SectionId::OPTIMIZER`] (and any id from [`SectionId::USER`] up)
//! flat f32 blobs owned by the heads; [`SectionId::BANK`] and [`SectionId::GATE`] the bank and
//! gate, whose content is validated in full when decoded (counts, permutations, ranges,
//! finiteness), because a checksum only proves the bytes are the ones a writer wrote.
//!
//! # Atomic save
//! [`StateWriter::save`] writes the whole file to `<path>.tmp` in the same directory,
//! `fsync`s it, `rename`s it over `path` and `fsync`s the directory:
//! - a crash (or SIGKILL) before the rename leaves `path` untouched: the previous state;
//! - `rename(2)` replaces the directory entry atomically: readers see the old or the new file,
//!   never a mix;
//! - the `fsync` of the file before the rename makes sure that after a power loss the renamed
//!   file has its data (not a zero-length file); the `fsync` of the directory makes the rename
//!   itself durable before `save` reports success.
//!
//! A leftover `<path>.tmp` is never read and is overwritten by the next save. One writer at a
//! time: concurrent saves to the same path are not supported.
//!
//! # Loading
//! [`StateFile::open`] maps the file with `memmap2`, checks the size limit, header, dims and every
//! checksum before returning; accessors then decode sections without panicking on any content.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bank::{Arena, Bank, BankCounters, BankParams, MAX_CLASSES, Meta, Storage};
use crate::error::{Error, Result};
use crate::gate::{Gate, GateCounters, GateParams, GateStats, Pca, Projection, Shrinkage, Variant};

/// The magic bytes that start every state file.
pub const MAGIC: [u8; 8] = *b"EDGESSL\0";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_BYTES: usize = 64;
/// Section header length in bytes (also the payload alignment).
pub const SECTION_HEADER_BYTES: usize = 64;
/// Largest state file accepted or written (4 GiB).
pub const MAX_FILE_BYTES: u64 = 1 << 32;
/// Largest number of sections in a file.
pub const MAX_SECTIONS: u32 = 1024;

const _: () = assert!(HEADER_BYTES.is_multiple_of(64) && SECTION_HEADER_BYTES == 64);

/// The dimensions a state file is written for; loading checks them against the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Embedding dimension.
    pub embedding_dim: u32,
    /// Number of classes.
    pub n_classes: u32,
    /// Bank capacity.
    pub bank_capacity: u32,
}

/// A section's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionId(pub u32);

impl SectionId {
    /// Run counters (u64s: steps, samples seen, ...).
    pub const COUNTERS: SectionId = SectionId(1);
    /// The memory bank.
    pub const BANK: SectionId = SectionId(2);
    /// The OOD gate.
    pub const GATE: SectionId = SectionId(3);
    /// Student head parameters (f32).
    pub const STUDENT: SectionId = SectionId(16);
    /// Teacher (EMA) head parameters (f32).
    pub const TEACHER: SectionId = SectionId(17);
    /// Optimizer state, e.g. momentum buffers (f32).
    pub const OPTIMIZER: SectionId = SectionId(18);
    /// First id free for other f32 blobs.
    pub const USER: SectionId = SectionId(256);

    /// A readable name for errors.
    pub fn name(self) -> String {
        match self {
            SectionId::COUNTERS => "counters".into(),
            SectionId::BANK => "bank".into(),
            SectionId::GATE => "gate".into(),
            SectionId::STUDENT => "student".into(),
            SectionId::TEACHER => "teacher".into(),
            SectionId::OPTIMIZER => "optimizer".into(),
            SectionId(i) => format!("section {i}"),
        }
    }
}

/// How a section's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A structured payload (bank, gate).
    Raw,
    /// Little-endian f32 values.
    F32,
    /// Little-endian u64 values.
    U64,
}

impl Encoding {
    fn tag(self) -> u32 {
        match self {
            Encoding::Raw => 0,
            Encoding::F32 => 1,
            Encoding::U64 => 2,
        }
    }

    fn from_tag(t: u32) -> Option<Encoding> {
        Some(match t {
            0 => Encoding::Raw,
            1 => Encoding::F32,
            2 => Encoding::U64,
            _ => return None,
        })
    }

    fn width(self) -> usize {
        match self {
            Encoding::Raw => 1,
            Encoding::F32 => 4,
            Encoding::U64 => 8,
        }
    }
}

/// Collects sections and writes a state file.
#[derive(Debug, Clone)]
pub struct StateWriter {
    dims: Dims,
    generation: u64,
    sections: Vec<(SectionId, Encoding, Vec<u8>)>,
}

fn invalid(name: &'static str, reason: String) -> Error {
    Error::InvalidParam { name, reason }
}

impl StateWriter {
    /// A writer for `dims`; `generation` is stored in the header (e.g. a save counter).
    pub fn new(dims: Dims, generation: u64) -> Self {
        StateWriter { dims, generation, sections: Vec::new() }
    }

    fn push(&mut self, id: SectionId, enc: Encoding, payload: Vec<u8>) -> Result<&mut Self> {
        if self.sections.iter().any(|s| s.0 == id) {
            return Err(invalid("section", format!("{} added twice", id.name())));
        }
        if self.sections.len() >= MAX_SECTIONS as usize {
            return Err(invalid("section", format!("more than {MAX_SECTIONS} sections")));
        }
        self.sections.push((id, enc, payload));
        Ok(self)
    }

    /// Adds a flat f32 blob (head parameters, optimizer buffers, ...).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`section`) if `id` was already added or is a reserved id
    /// ([`SectionId::COUNTERS`], [`SectionId::BANK`], [`SectionId::GATE`]).
    pub fn f32_blob(&mut self, id: SectionId, values: &[f32]) -> Result<&mut Self> {
        if matches!(id, SectionId::COUNTERS | SectionId::BANK | SectionId::GATE) {
            return Err(invalid("section", format!("{} is not an f32 blob id", id.name())));
        }
        let mut b = Vec::with_capacity(values.len() * 4);
        values.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        self.push(id, Encoding::F32, b)
    }

    /// Adds a flat byte blob (e.g. int8-coded feature maps), stored as a raw section.
    ///
    /// # Errors
    /// As [`StateWriter::f32_blob`].
    pub fn bytes_blob(&mut self, id: SectionId, values: &[u8]) -> Result<&mut Self> {
        if matches!(id, SectionId::COUNTERS | SectionId::BANK | SectionId::GATE) {
            return Err(invalid("section", format!("{} is not a byte blob id", id.name())));
        }
        self.push(id, Encoding::Raw, values.to_vec())
    }

    /// Adds the counters section.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`section`) if already added.
    pub fn counters(&mut self, values: &[u64]) -> Result<&mut Self> {
        let mut b = Vec::with_capacity(values.len() * 8);
        values.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        self.push(SectionId::COUNTERS, Encoding::U64, b)
    }

    /// Adds the bank.
    ///
    /// # Errors
    /// [`Error::StateDims`] if its dims differ from the writer's; [`Error::InvalidParam`]
    /// (`section`) if already added.
    pub fn bank(&mut self, bank: &Bank) -> Result<&mut Self> {
        let p = bank.params();
        check_dims(
            Path::new("<writer>"),
            &self.dims,
            Some(p.dim as u64),
            Some(p.n_classes as u64),
            Some(p.capacity as u64),
        )?;
        self.push(SectionId::BANK, Encoding::Raw, encode_bank(bank))
    }

    /// Adds the gate.
    ///
    /// # Errors
    /// [`Error::StateDims`] if its dims differ from the writer's; [`Error::InvalidParam`]
    /// (`section`) if already added.
    pub fn gate(&mut self, gate: &Gate) -> Result<&mut Self> {
        check_dims(
            Path::new("<writer>"),
            &self.dims,
            Some(gate.dim() as u64),
            Some(gate.n_classes() as u64),
            None,
        )?;
        self.push(SectionId::GATE, Encoding::Raw, encode_gate(gate))
    }

    /// The complete file bytes.
    ///
    /// # Errors
    /// [`Error::StateTooLarge`] above [`MAX_FILE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let len: u64 = HEADER_BYTES as u64
            + self
                .sections
                .iter()
                .map(|s| (SECTION_HEADER_BYTES + padded(s.2.len())) as u64)
                .sum::<u64>();
        if len > MAX_FILE_BYTES {
            return Err(Error::StateTooLarge {
                path: "<writer>".into(),
                size: len,
                limit: MAX_FILE_BYTES,
            });
        }
        let mut out = Vec::with_capacity(len as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        out.extend_from_slice(&self.dims.embedding_dim.to_le_bytes());
        out.extend_from_slice(&self.dims.n_classes.to_le_bytes());
        out.extend_from_slice(&self.dims.bank_capacity.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(self.sections.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        let crc = crc32fast::hash(&out[..60]);
        out.extend_from_slice(&crc.to_le_bytes());
        for (id, enc, payload) in &self.sections {
            let mut h = [0u8; SECTION_HEADER_BYTES];
            h[0..4].copy_from_slice(&id.0.to_le_bytes());
            h[4..8].copy_from_slice(&enc.tag().to_le_bytes());
            h[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
            let pad = padded(payload.len()) - payload.len();
            let crc = section_crc(&h, payload, pad);
            h[16..20].copy_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(payload);
            out.resize(out.len() + pad, 0);
        }
        Ok(out)
    }

    /// Writes the state atomically to `path` (see the [module docs](self)): `<path>.tmp`,
    /// write, `fsync`, rename, `fsync` of the directory. Returns only once the data is durable.
    ///
    /// # Errors
    /// [`Error::Io`] on any I/O failure (the previous file at `path` is then untouched);
    /// [`Error::InvalidParam`] (`path`) if `path` has no file name; as [`StateWriter::to_bytes`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        let Some(name) = path.file_name() else {
            return Err(invalid("path", format!("{} has no file name", path.display())));
        };
        let mut tmp_name = name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        #[cfg(unix)]
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
        Ok(())
    }
}

fn padded(n: usize) -> usize {
    n.div_ceil(64) * 64
}

fn section_crc(h: &[u8; SECTION_HEADER_BYTES], payload: &[u8], pad: usize) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&h[0..16]);
    c.update(&h[20..64]);
    c.update(payload);
    c.update(&[0u8; 64][..pad]);
    c.finalize()
}

fn check_dims(
    path: &Path,
    d: &Dims,
    dim: Option<u64>,
    k: Option<u64>,
    cap: Option<u64>,
) -> Result<()> {
    let pairs = [
        ("embedding_dim", u64::from(d.embedding_dim), dim),
        ("n_classes", u64::from(d.n_classes), k),
        ("bank_capacity", u64::from(d.bank_capacity), cap),
    ];
    for (field, expected, found) in pairs {
        if let Some(found) = found
            && found != expected
        {
            return Err(Error::StateDims { path: path.into(), field, expected, found });
        }
    }
    Ok(())
}

/// Where the bytes of a loaded state live.
#[derive(Debug)]
enum Source {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

#[derive(Debug, Clone, Copy)]
struct SectionEntry {
    id: SectionId,
    encoding: Encoding,
    offset: usize,
    len: usize,
}

/// A validated state file (header, dims and every checksum checked).
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    source: Source,
    dims: Dims,
    generation: u64,
    sections: Vec<SectionEntry>,
}

fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn rd_u64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl StateFile {
    /// Maps and validates `path`, expecting `expected` dims.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::StateTooLarge`]; [`Error::StateTruncated`];
    /// [`Error::StateBadMagic`]; [`Error::StateVersion`]; [`Error::StateChecksum`];
    /// [`Error::StateDims`]; [`Error::StateMalformed`].
    pub fn open(path: impl AsRef<Path>, expected: &Dims) -> Result<StateFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len > MAX_FILE_BYTES {
            return Err(Error::StateTooLarge {
                path: path.into(),
                size: len,
                limit: MAX_FILE_BYTES,
            });
        }
        if len < HEADER_BYTES as u64 {
            return Err(Error::StateTruncated {
                path: path.into(),
                needed: HEADER_BYTES as u64,
                got: len,
            });
        }
        // SAFETY: `Mmap::map` is unsafe because the mapped file may be modified or truncated by
        // another process while mapped, which would change the slice under us (UB) or raise
        // SIGBUS. edge-ssl never writes an existing state file in place: `StateWriter::save`
        // writes a new file and renames it over the old name, so a mapping we hold keeps
        // pointing at the old, unchanged inode. The map is read-only and private to this
        // `StateFile`. Other programs must not modify state files in place (documented in the
        // module docs); that is the caller's contract.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::validate(path.to_path_buf(), Source::Map(map), expected)
    }

    /// Validates state bytes held in memory (`path` is reported as `<bytes>`).
    ///
    /// # Errors
    /// As [`StateFile::open`], without [`Error::Io`].
    pub fn from_bytes(bytes: Vec<u8>, expected: &Dims) -> Result<StateFile> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::StateTooLarge {
                path: "<bytes>".into(),
                size: bytes.len() as u64,
                limit: MAX_FILE_BYTES,
            });
        }
        Self::validate("<bytes>".into(), Source::Owned(bytes), expected)
    }

    fn validate(path: PathBuf, source: Source, expected: &Dims) -> Result<StateFile> {
        let b: &[u8] = match &source {
            Source::Map(m) => m,
            Source::Owned(v) => v,
        };
        let got = b.len() as u64;
        if b.len() < 8 || b[..8] != MAGIC {
            let mut found = [0u8; 8];
            let n = b.len().min(8);
            found[..n].copy_from_slice(&b[..n]);
            if n == 8 || !MAGIC.starts_with(&b[..n]) {
                return Err(Error::StateBadMagic { path, found });
            }
        }
        if b.len() < HEADER_BYTES {
            return Err(Error::StateTruncated { path, needed: HEADER_BYTES as u64, got });
        }
        let stored = rd_u32(b, 60);
        let computed = crc32fast::hash(&b[..60]);
        if stored != computed {
            return Err(Error::StateChecksum { path, section: "header".into(), stored, computed });
        }
        let version = rd_u32(b, 8);
        if version != FORMAT_VERSION {
            return Err(Error::StateVersion { path, found: version, supported: FORMAT_VERSION });
        }
        let malformed =
            |path: &PathBuf, reason: String| Error::StateMalformed { path: path.clone(), reason };
        if rd_u32(b, 12) != HEADER_BYTES as u32 || rd_u32(b, 28) != 0 || b[52..60] != [0u8; 8] {
            return Err(malformed(&path, "bad header length or non-zero reserved bytes".into()));
        }
        let dims = Dims {
            embedding_dim: rd_u32(b, 16),
            n_classes: rd_u32(b, 20),
            bank_capacity: rd_u32(b, 24),
        };
        check_dims(
            &path,
            expected,
            Some(u64::from(dims.embedding_dim)),
            Some(u64::from(dims.n_classes)),
            Some(u64::from(dims.bank_capacity)),
        )?;
        let generation = rd_u64(b, 32);
        let file_len = rd_u64(b, 40);
        if file_len > MAX_FILE_BYTES {
            return Err(Error::StateTooLarge { path, size: file_len, limit: MAX_FILE_BYTES });
        }
        if got < file_len {
            return Err(Error::StateTruncated { path, needed: file_len, got });
        }
        if got > file_len {
            return Err(malformed(&path, format!("{} trailing bytes", got - file_len)));
        }
        let count = rd_u32(b, 48);
        if count > MAX_SECTIONS {
            return Err(malformed(&path, format!("{count} sections > {MAX_SECTIONS}")));
        }
        let mut sections: Vec<SectionEntry> = Vec::with_capacity(count as usize);
        let mut off = HEADER_BYTES;
        for _ in 0..count {
            if b.len() - off < SECTION_HEADER_BYTES {
                return Err(malformed(&path, "section header past the end".into()));
            }
            let h: &[u8; SECTION_HEADER_BYTES] = b[off..off + SECTION_HEADER_BYTES]
                .try_into()
                .map_err(|_| malformed(&path, "section header past the end".into()))?;
            let id = SectionId(rd_u32(h, 0));
            let len64 = rd_u64(h, 8);
            let room = (b.len() - off - SECTION_HEADER_BYTES) as u64;
            if len64 > room {
                return Err(malformed(&path, format!("{} longer than the file", id.name())));
            }
            let len = len64 as usize;
            let pad = padded(len) - len;
            if (len + pad) as u64 > room {
                return Err(malformed(&path, format!("{} padding past the end", id.name())));
            }
            let start = off + SECTION_HEADER_BYTES;
            let stored = rd_u32(h, 16);
            let computed = section_crc(h, &b[start..start + len], pad);
            if stored != computed {
                return Err(Error::StateChecksum { path, section: id.name(), stored, computed });
            }
            if h[20..64].iter().any(|&v| v != 0)
                || b[start + len..start + len + pad].iter().any(|&v| v != 0)
            {
                return Err(malformed(&path, format!("{}: non-zero reserved bytes", id.name())));
            }
            let Some(encoding) = Encoding::from_tag(rd_u32(h, 4)) else {
                return Err(malformed(&path, format!("{}: unknown encoding", id.name())));
            };
            if !len.is_multiple_of(encoding.width()) {
                return Err(malformed(&path, format!("{}: ragged payload", id.name())));
            }
            if sections.iter().any(|s| s.id == id) {
                return Err(malformed(&path, format!("{} appears twice", id.name())));
            }
            sections.push(SectionEntry { id, encoding, offset: start, len });
            off = start + len + pad;
        }
        if off != b.len() {
            return Err(malformed(&path, "bytes after the last section".into()));
        }
        Ok(StateFile { path, source, dims, generation, sections })
    }

    fn bytes(&self) -> &[u8] {
        match &self.source {
            Source::Map(m) => m,
            Source::Owned(v) => v,
        }
    }

    /// The dims in the header.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// The generation in the header.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The ids of the sections present, in file order.
    pub fn section_ids(&self) -> impl Iterator<Item = SectionId> + '_ {
        self.sections.iter().map(|s| s.id)
    }

    fn section(&self, id: SectionId, enc: Encoding) -> Result<&[u8]> {
        let Some(s) = self.sections.iter().find(|s| s.id == id) else {
            return Err(Error::StateMissingSection { path: self.path.clone(), section: id.name() });
        };
        if s.encoding != enc {
            return Err(self.malformed(format!("{} has encoding {:?}", id.name(), s.encoding)));
        }
        Ok(&self.bytes()[s.offset..s.offset + s.len])
    }

    fn malformed(&self, reason: String) -> Error {
        Error::StateMalformed { path: self.path.clone(), reason }
    }

    /// Number of values in f32 blob `id`.
    ///
    /// # Errors
    /// [`Error::StateMissingSection`]; [`Error::StateMalformed`] if it is not an f32 blob.
    pub fn f32_len(&self, id: SectionId) -> Result<usize> {
        Ok(self.section(id, Encoding::F32)?.len() / 4)
    }

    /// Copies f32 blob `id` into `out` (its length must match exactly).
    ///
    /// # Errors
    /// As [`StateFile::f32_len`]; [`Error::StateDims`] (`f32 blob length`) if `out` has another
    /// length.
    pub fn f32_blob_into(&self, id: SectionId, out: &mut [f32]) -> Result<()> {
        let b = self.section(id, Encoding::F32)?;
        if b.len() / 4 != out.len() {
            return Err(Error::StateDims {
                path: self.path.clone(),
                field: "f32 blob length",
                expected: out.len() as u64,
                found: (b.len() / 4) as u64,
            });
        }
        for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }

    /// Copies byte blob `id` ([`StateWriter::bytes_blob`]) into `out` (its length must match
    /// exactly).
    ///
    /// # Errors
    /// [`Error::StateMissingSection`]; [`Error::StateMalformed`] if it is not a raw section;
    /// [`Error::StateDims`] (`byte blob length`) if `out` has another length.
    pub fn bytes_blob_into(&self, id: SectionId, out: &mut [u8]) -> Result<()> {
        let b = self.section(id, Encoding::Raw)?;
        if b.len() != out.len() {
            return Err(Error::StateDims {
                path: self.path.clone(),
                field: "byte blob length",
                expected: out.len() as u64,
                found: b.len() as u64,
            });
        }
        out.copy_from_slice(b);
        Ok(())
    }

    /// The counters section.
    ///
    /// # Errors
    /// [`Error::StateMissingSection`]; [`Error::StateMalformed`].
    pub fn counters(&self) -> Result<Vec<u64>> {
        let b = self.section(SectionId::COUNTERS, Encoding::U64)?;
        Ok(b.chunks_exact(8).map(|c| rd_u64(c, 0)).collect())
    }

    /// Decodes and validates the bank.
    ///
    /// # Errors
    /// [`Error::StateMissingSection`]; [`Error::StateDims`]; [`Error::StateMalformed`].
    pub fn bank(&self) -> Result<Bank> {
        let b = self.section(SectionId::BANK, Encoding::Raw)?;
        decode_bank(b, &self.dims, &self.path)
    }

    /// Decodes and validates the gate (re-deriving its solver from the stored statistics).
    ///
    /// # Errors
    /// [`Error::StateMissingSection`]; [`Error::StateDims`]; [`Error::StateMalformed`].
    pub fn gate(&self) -> Result<Gate> {
        let b = self.section(SectionId::GATE, Encoding::Raw)?;
        decode_gate(b, &self.dims, &self.path)
    }
}

// ---- payload encoding -------------------------------------------------------------------

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// A bounds-checked little-endian reader: every read checks the remaining length first, so no
/// length field can cause an out-of-bounds read or a huge allocation.
struct R<'a> {
    b: &'a [u8],
}

type Rr<T> = std::result::Result<T, String>;

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Rr<&'a [u8]> {
        if n > self.b.len() {
            return Err(format!("payload too short: need {n} more bytes, have {}", self.b.len()));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn arr<const N: usize>(&mut self) -> Rr<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Rr<u8> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Rr<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Rr<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Rr<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn f32(&mut self) -> Rr<f32> {
        Ok(f32::from_le_bytes(self.arr()?))
    }
    fn f64(&mut self) -> Rr<f64> {
        Ok(f64::from_le_bytes(self.arr()?))
    }
    fn vec<T>(&mut self, n: usize, width: usize, f: impl Fn(&[u8]) -> T) -> Rr<Vec<T>> {
        let bytes = n.checked_mul(width).ok_or("length overflow")?;
        Ok(self.take(bytes)?.chunks_exact(width).map(f).collect())
    }
    fn f32s(&mut self, n: usize) -> Rr<Vec<f32>> {
        self.vec(n, 4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
    fn f64s(&mut self, n: usize) -> Rr<Vec<f64>> {
        self.vec(n, 8, |c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f64::from_le_bytes(a)
        })
    }
    fn u64s(&mut self, n: usize) -> Rr<Vec<u64>> {
        self.vec(n, 8, |c| rd_u64(c, 0))
    }
    fn u32s(&mut self, n: usize) -> Rr<Vec<u32>> {
        self.vec(n, 4, |c| rd_u32(c, 0))
    }
    fn end(&self) -> Rr<()> {
        if self.b.is_empty() { Ok(()) } else { Err(format!("{} trailing bytes", self.b.len())) }
    }
}

fn encode_bank(bank: &Bank) -> Vec<u8> {
    let p = bank.params;
    let mut w = W(Vec::new());
    w.u32(p.storage.tag());
    w.u32(p.dim as u32);
    w.u32(p.n_classes as u32);
    w.u32(p.capacity as u32);
    w.u64(bank.tick);
    let c = bank.counters;
    [c.stored, c.rejected, c.evicted_given, c.evicted_pseudo].into_iter().for_each(|v| w.u64(v));
    for s in &bank.seen {
        w.u64(s[0]);
        w.u64(s[1]);
    }
    bank.bounds.iter().for_each(|&v| w.u32(v));
    bank.order.iter().for_each(|&v| w.u32(v));
    bank.ring.iter().for_each(|&v| w.u32(v));
    for m in &bank.meta {
        w.u64(m.seq);
        w.f32(m.confidence);
        w.u16(m.label);
        w.u8(m.kind);
        w.u8(m.occupied);
    }
    bank.scales.iter().for_each(|&v| w.f32(v));
    match &bank.arena {
        Arena::F32(v) => v.iter().for_each(|&x| w.f32(x)),
        Arena::F16(v) => v.iter().for_each(|&x| w.u16(x)),
        Arena::I8(v) => v.iter().for_each(|&x| w.u8(x as u8)),
    }
    w.0
}

fn decode_bank(b: &[u8], dims: &Dims, path: &Path) -> Result<Bank> {
    let mut r = R { b };
    let bad = |reason: String| Error::StateMalformed { path: path.into(), reason };
    let head = (|| -> Rr<[u32; 4]> { Ok([r.u32()?, r.u32()?, r.u32()?, r.u32()?]) })()
        .map_err(|e| bad(format!("bank: {e}")))?;
    let [tag, dim, k, cap] = head;
    check_dims(path, dims, Some(dim.into()), Some(k.into()), Some(cap.into()))?;
    let storage = Storage::from_tag(tag).ok_or_else(|| bad(format!("bank: storage tag {tag}")))?;
    let params = BankParams::new(cap as usize, dim as usize, k as usize).with_storage(storage);
    params.check().map_err(|e| bad(format!("bank: {e}")))?;
    // the bytes must be present before anything is allocated
    let (capu, d, ku) = (cap as usize, dim as usize, k as usize);
    let need = 8
        + 32
        + 16 * ku
        + 4 * (2 * ku + 2)
        + capu * (4 + 4 + 16)
        + capu * storage.bytes_per_entry()
        + params.arena_bytes();
    if r.b.len() != need {
        return Err(bad(format!("bank: payload has {} bytes, dims need {need}", r.b.len())));
    }
    let mut bank = params.build().map_err(|e| bad(format!("bank: {e}")))?;
    (|| -> Rr<()> {
        bank.tick = r.u64()?;
        bank.counters = BankCounters {
            stored: r.u64()?,
            rejected: r.u64()?,
            evicted_given: r.u64()?,
            evicted_pseudo: r.u64()?,
        };
        for s in bank.seen.iter_mut() {
            *s = [r.u64()?, r.u64()?];
        }
        for v in bank.bounds.iter_mut() {
            *v = r.u32()?;
        }
        let order = r.u32s(capu)?;
        bank.order.copy_from_slice(&order);
        let ring = r.u32s(capu)?;
        bank.ring.copy_from_slice(&ring);
        for m in bank.meta.iter_mut() {
            *m = Meta {
                seq: r.u64()?,
                confidence: r.f32()?,
                label: r.u16()?,
                kind: r.u8()?,
                occupied: r.u8()?,
            };
        }
        if storage == Storage::I8 {
            let s = r.f32s(capu)?;
            bank.scales.copy_from_slice(&s);
        }
        match &mut bank.arena {
            Arena::F32(v) => v.copy_from_slice(&r.f32s(capu * d)?),
            Arena::F16(v) => {
                v.copy_from_slice(&r.vec(capu * d, 2, |c| u16::from_le_bytes([c[0], c[1]]))?)
            }
            Arena::I8(v) => v.copy_from_slice(&r.vec(capu * d, 1, |c| c[0] as i8)?),
        }
        r.end()
    })()
    .map_err(|e| bad(format!("bank: {e}")))?;
    validate_bank(&mut bank).map_err(|e| bad(format!("bank: {e}")))?;
    Ok(bank)
}

/// Checks every invariant the bank's code relies on, and rebuilds `pos`.
fn validate_bank(bank: &mut Bank) -> Rr<()> {
    let (cap, k) = (bank.params.capacity, bank.params.n_classes);
    let bounds = &bank.bounds;
    if bounds[0] != 0 || bounds[2 * k + 1] as usize != cap || bounds.windows(2).any(|w| w[0] > w[1])
    {
        return Err("segment bounds are not a partition".into());
    }
    let mut seen_slot = vec![false; cap];
    for (p, &s) in bank.order.iter().enumerate() {
        let s = s as usize;
        if s >= cap || seen_slot[s] {
            return Err("order is not a permutation".into());
        }
        seen_slot[s] = true;
        bank.pos[s] = p as u32;
    }
    let len = bounds[2 * k] as u64;
    if bank.tick < len {
        return Err("tick smaller than the number of entries".into());
    }
    for seg in 0..=2 * k {
        for p in bounds[seg] as usize..bounds[seg + 1] as usize {
            let m = &bank.meta[bank.order[p] as usize];
            let ok = if seg == 2 * k {
                m.occupied == 0
            } else {
                m.occupied == 1
                    && usize::from(m.label) == seg / 2
                    && usize::from(m.kind) == seg % 2
                    && (0.0..=1.0).contains(&m.confidence)
                    && m.seq < bank.tick
            };
            if !ok {
                return Err(format!("entry metadata inconsistent at position {p}"));
            }
        }
    }
    for c in 0..k {
        for kind in 0..2 {
            if bank.seen[c][kind] < u64::from(bounds[2 * c + kind + 1] - bounds[2 * c + kind]) {
                return Err("fewer samples seen than stored".into());
            }
        }
    }
    if bank.ring.iter().any(|&s| s as usize >= cap) {
        return Err("ring slot out of range".into());
    }
    let finite = match &bank.arena {
        Arena::F32(v) => v.iter().all(|x| x.is_finite()),
        Arena::F16(v) => v.iter().all(|&h| h & 0x7c00 != 0x7c00),
        Arena::I8(_) => true,
    };
    if !finite || !bank.scales.iter().all(|s| s.is_finite() && *s >= 0.0) {
        return Err("non-finite embedding or scale".into());
    }
    Ok(())
}

fn encode_gate(g: &Gate) -> Vec<u8> {
    let mut w = W(Vec::new());
    let gp = g.params;
    w.u32(match gp.variant {
        Variant::Tied => 0,
        Variant::Relative => 1,
        Variant::Diagonal => 2,
    });
    let (st, sa) = match gp.shrinkage {
        Shrinkage::Oas => (0, 0.0),
        Shrinkage::LedoitWolf => (1, 0.0),
        Shrinkage::Fixed(a) => (2, a),
    };
    w.u32(st);
    w.f64(sa);
    w.u32(match gp.projection {
        Projection::None => 0,
        Projection::Pca(k) => k as u32,
    });
    w.u32(0);
    w.f64(gp.target_accept);
    w.u32(g.dim as u32);
    w.u32(g.n_classes as u32);
    w.u32(g.stats.dim as u32);
    w.f32(g.threshold);
    let c = g.counters;
    [c.accepted, c.rejected, c.updates].into_iter().for_each(|v| w.u64(v));
    if let Some(p) = &g.pca {
        p.mean.iter().for_each(|&v| w.f32(v));
        p.basis.iter().for_each(|&v| w.f32(v));
    }
    let s = &g.stats;
    s.counts.iter().for_each(|&v| w.u64(v));
    w.u64(s.total);
    s.means.iter().for_each(|&v| w.f64(v));
    s.scatter.iter().for_each(|&v| w.f64(v));
    w.f64(s.fourth);
    s.gmean.iter().for_each(|&v| w.f64(v));
    s.gscatter.iter().for_each(|&v| w.f64(v));
    w.f64(s.gfourth);
    w.0
}

fn decode_gate(b: &[u8], dims: &Dims, path: &Path) -> Result<Gate> {
    let bad = |reason: String| Error::StateMalformed { path: path.into(), reason };
    let mut r = R { b };
    let parsed = (|| -> Rr<_> {
        let variant = match r.u32()? {
            0 => Variant::Tied,
            1 => Variant::Relative,
            2 => Variant::Diagonal,
            t => return Err(format!("variant tag {t}")),
        };
        let st = r.u32()?;
        let sa = r.f64()?;
        let shrinkage = match st {
            0 => Shrinkage::Oas,
            1 => Shrinkage::LedoitWolf,
            2 => Shrinkage::Fixed(sa),
            t => return Err(format!("shrinkage tag {t}")),
        };
        let k = r.u32()? as usize;
        if r.u32()? != 0 {
            return Err("non-zero reserved field".into());
        }
        let projection = if k == 0 { Projection::None } else { Projection::Pca(k) };
        let target_accept = r.f64()?;
        let params = GateParams { shrinkage, variant, projection, target_accept };
        let (dim, n_classes, p) = (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
        Ok((params, dim, n_classes, p, r.f32()?))
    })()
    .map_err(|e| bad(format!("gate: {e}")))?;
    let (params, dim, n_classes, p, threshold) = parsed;
    check_dims(path, dims, Some(dim as u64), Some(n_classes as u64), None)?;
    params.check().map_err(|e| bad(format!("gate: {e}")))?;
    let expected_p = match params.projection {
        Projection::None => dim,
        Projection::Pca(k) => k,
    };
    if p != expected_p || p > dim || n_classes == 0 || n_classes > MAX_CLASSES || threshold.is_nan()
    {
        return Err(bad(format!("gate: projected dim {p} or threshold inconsistent")));
    }
    // exact size check before allocating anything
    let pca_len = match params.projection {
        Projection::None => 0,
        Projection::Pca(_) => dim + p * dim,
    };
    let need = 24 + 4 * pca_len + 8 * (n_classes + 1) + 8 * (n_classes * p + 2 * p * p + 2 + p);
    if r.b.len() != need {
        return Err(bad(format!("gate: payload has {} bytes, dims need {need}", r.b.len())));
    }
    let body = (|| -> Rr<_> {
        let counters = GateCounters { accepted: r.u64()?, rejected: r.u64()?, updates: r.u64()? };
        let pca = if pca_len > 0 {
            Some(Pca { mean: r.f32s(dim)?, basis: r.f32s(p * dim)? })
        } else {
            None
        };
        let mut s = GateStats::new(0, 0);
        s.dim = p;
        s.n_classes = n_classes;
        s.counts = r.u64s(n_classes)?;
        s.total = r.u64()?;
        s.means = r.f64s(n_classes * p)?;
        s.scatter = r.f64s(p * p)?;
        s.fourth = r.f64()?;
        s.gmean = r.f64s(p)?;
        s.gscatter = r.f64s(p * p)?;
        s.gfourth = r.f64()?;
        r.end()?;
        s.validate()?;
        if let Some(q) = &pca
            && !q.mean.iter().chain(&q.basis).all(|v| v.is_finite())
        {
            return Err("non-finite projection".into());
        }
        Ok((counters, pca, s))
    })()
    .map_err(|e| bad(format!("gate: {e}")))?;
    let (counters, pca, stats) = body;
    Gate::from_parts(params, dim, pca, stats, threshold, counters)
        .map_err(|e| bad(format!("gate: cannot rebuild: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Admitted;
    use rand::{SeedableRng, rngs::StdRng};

    const DIMS: Dims = Dims { embedding_dim: 4, n_classes: 3, bank_capacity: 8 };

    fn small_state() -> (Bank, Gate, Vec<u8>) {
        let mut rng = StdRng::seed_from_u64(1);
        let mut bank = BankParams::new(8, 4, 3).build().unwrap();
        for i in 0..20u32 {
            let x = [i as f32, 1.0, -0.5, (i % 3) as f32];
            if i % 4 == 0 {
                bank.insert_given(&x, i % 3, &mut rng).unwrap();
            } else {
                bank.insert_pseudo(Admitted::ungated(&x), i % 3, 0.9, &mut rng).unwrap();
            }
        }
        let x: Vec<f32> = (0..36).map(|i| ((i * 7 % 13) as f32) * 0.25 + (i % 4) as f32).collect();
        let y: Vec<u32> = (0..9).map(|i| i % 3).collect();
        let gate = GateParams::default().fit(&x, 4, &y, 3, &[]).unwrap();
        let mut w = StateWriter::new(DIMS, 7);
        w.bank(&bank).unwrap().gate(&gate).unwrap();
        w.f32_blob(SectionId::STUDENT, &[1.0, 2.0, 3.0]).unwrap();
        w.counters(&[5, 6]).unwrap();
        (bank, gate, w.to_bytes().unwrap())
    }

    fn fix_header_crc(b: &mut [u8]) {
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn roundtrip_all_sections() {
        let (bank, gate, bytes) = small_state();
        let f = StateFile::from_bytes(bytes.clone(), &DIMS).unwrap();
        assert_eq!(f.generation(), 7);
        assert_eq!(f.bank().unwrap(), bank);
        assert_eq!(f.gate().unwrap(), gate);
        let mut s = [0f32; 3];
        f.f32_blob_into(SectionId::STUDENT, &mut s).unwrap();
        assert_eq!(s, [1.0, 2.0, 3.0]);
        assert_eq!(f.counters().unwrap(), vec![5, 6]);
        assert_eq!(bytes.len() % 64, 0);
        // re-encoding the loaded state gives the same bytes
        let mut w = StateWriter::new(DIMS, 7);
        w.bank(&f.bank().unwrap()).unwrap().gate(&f.gate().unwrap()).unwrap();
        w.f32_blob(SectionId::STUDENT, &s).unwrap().counters(&[5, 6]).unwrap();
        assert_eq!(w.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn byte_blobs_round_trip_and_check_their_length() {
        let mut w = StateWriter::new(DIMS, 1);
        w.bytes_blob(SectionId(SectionId::USER.0 + 9), &[0, 255, 7]).unwrap();
        w.f32_blob(SectionId::STUDENT, &[1.0]).unwrap();
        assert!(w.bytes_blob(SectionId::BANK, &[1]).is_err(), "reserved id");
        let f = StateFile::from_bytes(w.to_bytes().unwrap(), &DIMS).unwrap();
        let mut out = [0u8; 3];
        f.bytes_blob_into(SectionId(SectionId::USER.0 + 9), &mut out).unwrap();
        assert_eq!(out, [0, 255, 7]);
        let e = f.bytes_blob_into(SectionId(SectionId::USER.0 + 9), &mut [0u8; 2]).unwrap_err();
        assert!(matches!(e, Error::StateDims { field: "byte blob length", .. }), "{e:?}");
        let e = f.bytes_blob_into(SectionId::STUDENT, &mut out).unwrap_err();
        assert!(matches!(e, Error::StateMalformed { .. }), "an f32 blob is not bytes: {e:?}");
    }

    #[test]
    fn save_then_open_through_mmap() {
        let (bank, _, bytes) = small_state();
        let dir = std::env::temp_dir().join(format!("edge-ssl-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.bin");
        let mut w = StateWriter::new(DIMS, 7);
        let (b2, g2, _) = small_state();
        w.bank(&b2).unwrap().gate(&g2).unwrap();
        w.f32_blob(SectionId::STUDENT, &[1.0, 2.0, 3.0]).unwrap().counters(&[5, 6]).unwrap();
        w.save(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert!(!dir.join("state.bin.tmp").exists());
        let f = StateFile::open(&path, &DIMS).unwrap();
        assert_eq!(f.bank().unwrap(), bank);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_bad_magic() {
        let (_, _, mut b) = small_state();
        b[0] = b'X';
        assert!(matches!(StateFile::from_bytes(b, &DIMS), Err(Error::StateBadMagic { .. })));
    }

    #[test]
    fn rejects_future_version() {
        let (_, _, mut b) = small_state();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        fix_header_crc(&mut b);
        assert!(matches!(
            StateFile::from_bytes(b, &DIMS),
            Err(Error::StateVersion { found: 2, supported: 1, .. })
        ));
    }

    #[test]
    fn rejects_truncated_header() {
        let (_, _, b) = small_state();
        let r = StateFile::from_bytes(b[..40].to_vec(), &DIMS);
        assert!(matches!(r, Err(Error::StateTruncated { needed: 64, got: 40, .. })), "{r:?}");
        let r = StateFile::from_bytes(b[..3].to_vec(), &DIMS);
        assert!(matches!(r, Err(Error::StateTruncated { .. })), "{r:?}");
    }

    #[test]
    fn rejects_truncated_body() {
        let (_, _, b) = small_state();
        let n = b.len();
        let r = StateFile::from_bytes(b[..n - 1].to_vec(), &DIMS);
        assert!(matches!(r, Err(Error::StateTruncated { .. })), "{r:?}");
    }

    #[test]
    fn rejects_header_bit_flip() {
        let (_, _, mut b) = small_state();
        b[33] ^= 0x10; // generation
        let r = StateFile::from_bytes(b, &DIMS);
        assert!(matches!(r, Err(Error::StateChecksum { ref section, .. }) if section == "header"));
    }

    #[test]
    fn rejects_section_bit_flip() {
        let (_, _, mut b) = small_state();
        let n = b.len();
        b[n - 70] ^= 1; // inside the last sections
        assert!(matches!(StateFile::from_bytes(b, &DIMS), Err(Error::StateChecksum { .. })));
    }

    #[test]
    fn rejects_wrong_dims() {
        let (_, _, b) = small_state();
        let other = Dims { embedding_dim: 5, ..DIMS };
        assert!(matches!(
            StateFile::from_bytes(b, &other),
            Err(Error::StateDims { field: "embedding_dim", expected: 5, found: 4, .. })
        ));
    }

    #[test]
    fn rejects_too_large_declared_length() {
        let (_, _, mut b) = small_state();
        b[40..48].copy_from_slice(&(MAX_FILE_BYTES + 1).to_le_bytes());
        fix_header_crc(&mut b);
        assert!(matches!(StateFile::from_bytes(b, &DIMS), Err(Error::StateTooLarge { .. })));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let (_, _, mut b) = small_state();
        b.push(0);
        assert!(matches!(StateFile::from_bytes(b, &DIMS), Err(Error::StateMalformed { .. })));
    }

    #[test]
    fn rejects_missing_section() {
        let b = StateWriter::new(DIMS, 0).to_bytes().unwrap();
        let f = StateFile::from_bytes(b, &DIMS).unwrap();
        assert!(matches!(f.bank(), Err(Error::StateMissingSection { .. })));
        assert!(matches!(f.f32_len(SectionId::TEACHER), Err(Error::StateMissingSection { .. })));
    }

    #[test]
    fn rejects_inconsistent_bank_with_valid_checksum() {
        let (bank, _, _) = small_state();
        let mut payload = encode_bank(&bank);
        // first segment bound (must be 0) is at 4*4 + 8 + 32 + 16*3
        let o = 16 + 8 + 32 + 48;
        payload[o] = 1;
        let mut w = StateWriter::new(DIMS, 0);
        w.push(SectionId::BANK, Encoding::Raw, payload).unwrap();
        let f = StateFile::from_bytes(w.to_bytes().unwrap(), &DIMS).unwrap();
        assert!(matches!(f.bank(), Err(Error::StateMalformed { .. })));
    }

    #[test]
    fn rejects_wrong_blob_length() {
        let (_, _, b) = small_state();
        let f = StateFile::from_bytes(b, &DIMS).unwrap();
        let mut out = [0f32; 2];
        assert!(matches!(
            f.f32_blob_into(SectionId::STUDENT, &mut out),
            Err(Error::StateDims { field: "f32 blob length", .. })
        ));
    }

    #[test]
    fn writer_rejects_duplicate_section() {
        let mut w = StateWriter::new(DIMS, 0);
        w.counters(&[1]).unwrap();
        assert!(matches!(w.counters(&[2]), Err(Error::InvalidParam { name: "section", .. })));
        assert!(matches!(
            w.f32_blob(SectionId::BANK, &[1.0]),
            Err(Error::InvalidParam { name: "section", .. })
        ));
    }

    #[test]
    fn writer_rejects_bank_of_other_dims() {
        let bank = BankParams::new(9, 4, 3).build().unwrap();
        let mut w = StateWriter::new(DIMS, 0);
        assert!(matches!(w.bank(&bank), Err(Error::StateDims { field: "bank_capacity", .. })));
    }

    #[test]
    fn every_storage_roundtrips() {
        for storage in [Storage::F32, Storage::F16, Storage::I8] {
            let mut rng = StdRng::seed_from_u64(3);
            let mut bank = BankParams::new(8, 4, 3).with_storage(storage).build().unwrap();
            for i in 0..11u32 {
                bank.insert_given(&[i as f32, -1.5, 0.25, 3.0], i % 3, &mut rng).unwrap();
            }
            let mut w = StateWriter::new(DIMS, 0);
            w.bank(&bank).unwrap();
            let f = StateFile::from_bytes(w.to_bytes().unwrap(), &DIMS).unwrap();
            assert_eq!(f.bank().unwrap(), bank, "{storage:?}");
        }
    }

    #[test]
    fn autotraits() {
        fn check<T: Send + Sync + Unpin>() {}
        check::<StateFile>();
        check::<StateWriter>();
        check::<Dims>();
        check::<SectionId>();
    }
}
