//! The GGUF reader: parses header, metadata and tensor infos from a byte slice, checking
//! every count, length and offset against the bytes actually present.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::dialect::{resolve_layout, RawTensorInfo};
use super::error::{GgufError, Problem};
use super::metadata::Metadata;
use super::storage::{Residency, Storage};
use super::value::{Array, Value, ValueType};
use super::{TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::types::Dialect;

/// Deepest array-of-array nesting accepted; stops stack exhaustion on hostile input.
pub const MAX_ARRAY_NESTING: usize = 16;

/// Largest tensor rank ggml supports.
pub const MAX_DIMS: u32 = 4;

/// A bounds-checked little-endian reader over untrusted bytes.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], file: &'a str) -> Self {
        Cursor {
            bytes,
            pos: 0,
            file,
        }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub(crate) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    pub(crate) fn error_at(&self, offset: u64, problem: Problem) -> GgufError {
        GgufError::Malformed {
            file: self.file.to_owned(),
            offset,
            problem,
        }
    }

    pub(crate) fn error(&self, problem: Problem) -> GgufError {
        self.error_at(self.pos(), problem)
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.error(Problem::Truncated {
                what,
                need: n,
                have: self.remaining(),
            }));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let start = self.pos();
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.error_at(
                start,
                Problem::BadUtf8 {
                    what: what.to_owned(),
                },
            )),
        }
    }

    /// Checks that `count` items of at least `min_size` bytes each can still follow.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &'static str,
    ) -> Result<usize, GgufError> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|need| need <= self.remaining());
        if !fits {
            return Err(self.error(Problem::CountTooLarge {
                what,
                count,
                remaining: self.remaining(),
            }));
        }
        Ok(count as usize)
    }

    fn value_type(&mut self) -> Result<ValueType, GgufError> {
        let at = self.pos();
        let code = self.u32("value type")?;
        ValueType::from_u32(code).ok_or_else(|| self.error_at(at, Problem::UnknownValueType(code)))
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>("u8 value")?[0]),
            ValueType::I8 => Value::I8(self.array::<1>("i8 value")?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array("u16 value")?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array("i16 value")?)),
            ValueType::U32 => Value::U32(self.u32("u32 value")?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array("i32 value")?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array("f32 value")?)),
            // Upstream reads any non-zero byte as true; so do we.
            ValueType::Bool => Value::Bool(self.array::<1>("bool value")?[0] != 0),
            ValueType::String => Value::String(self.string("string value")?),
            ValueType::U64 => Value::U64(self.u64("u64 value")?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array("i64 value")?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array("f64 value")?)),
            ValueType::Array => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(self.error(Problem::NestingTooDeep {
                        key: key.to_owned(),
                        max: MAX_ARRAY_NESTING,
                    }));
                }
                let elem_type = self.value_type()?;
                let count = self.u64("array length")?;
                let count =
                    self.check_count(count, elem_type.min_encoded_size(), "array element")?;
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(self.value(elem_type, key, depth + 1)?);
                }
                Value::Array(Array { elem_type, values })
            }
        })
    }
}

/// The raw result of parsing everything before the data section.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Metadata,
    pub alignment: u64,
    pub dialect: Dialect,
    pub data_start: u64,
    pub tensors: Vec<TensorInfo>,
}

/// Smallest possible metadata record: empty key (8), value type (4), one byte of value.
const MIN_KV_SIZE: u64 = 13;
/// Smallest possible tensor-info record: empty name (8), n_dims (4), type (4), offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 24;

pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<Parsed, GgufError> {
    let mut c = Cursor::new(bytes, file);
    let magic = c.array::<4>("magic")?;
    if magic != GGUF_MAGIC {
        return Err(c.error_at(0, Problem::BadMagic { found: magic }));
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        let problem = if version & 0xFFFF == 0 && version != 0 {
            Problem::BigEndian { raw: version }
        } else {
            Problem::UnsupportedVersion(version)
        };
        return Err(c.error_at(4, problem));
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    let kv_count = c.check_count(kv_count, MIN_KV_SIZE, "metadata")?;

    let mut metadata = Metadata::new();
    for _ in 0..kv_count {
        let key_at = c.pos();
        let key = c.string("metadata key")?;
        let ty = c.value_type()?;
        let value = c.value(ty, &key, 0)?;
        if let Err((key, _)) = metadata.insert_new(key, value) {
            return Err(c.error_at(key_at, Problem::DuplicateKey(key)));
        }
    }

    let alignment = alignment_of(&metadata).map_err(|p| c.error_at(24, p))?;

    let tensor_count = c.check_count(tensor_count, MIN_TENSOR_INFO_SIZE, "tensor")?;
    let mut raw = Vec::with_capacity(tensor_count);
    let mut names = std::collections::HashSet::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        let at = c.pos();
        let name = c.string("tensor name")?;
        let n_dims = c.u32("tensor n_dims")?;
        if n_dims > MAX_DIMS {
            return Err(c.error_at(
                at,
                Problem::BadDims {
                    tensor: name,
                    n_dims,
                },
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64("tensor dimension")?);
        }
        // ggml stores dimensions as int64; anything above i64::MAX or a product that
        // overflows cannot describe real data.
        let product = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if product.is_none_or(|n| n > i64::MAX as u64) || ne.iter().any(|&d| d > i64::MAX as u64) {
            return Err(c.error_at(at, Problem::ShapeOverflow { tensor: name, ne }));
        }
        let raw_type = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        if !names.insert(name.clone()) {
            return Err(c.error_at(at, Problem::DuplicateTensor(name)));
        }
        raw.push(RawTensorInfo {
            name,
            ne,
            raw_type,
            offset,
            info_at: at,
        });
    }

    let end_of_infos = c.pos();
    let data_start = end_of_infos.div_ceil(alignment).saturating_mul(alignment);
    // A file without tensors may end right after its infos, before the padding.
    let data_len = (bytes.len() as u64).saturating_sub(data_start);
    if data_start > bytes.len() as u64 && !raw.is_empty() {
        return Err(c.error_at(
            end_of_infos,
            Problem::Truncated {
                what: "padding before the data section",
                need: data_start - end_of_infos,
                have: bytes.len() as u64 - end_of_infos,
            },
        ));
    }
    let architecture = metadata.get_str("general.architecture");
    let file_type = metadata.get_u64("general.file_type");
    let (dialect, tensors) = resolve_layout(&raw, architecture, file_type, alignment, data_len)
        .map_err(|(at, p)| c.error_at(at, p))?;
    Ok(Parsed {
        version,
        metadata,
        alignment,
        dialect,
        data_start,
        tensors,
    })
}

/// `general.alignment`, or 32 when absent. Any integer type is accepted (the spec asks for
/// u32); the value must be a non-zero power of two.
pub(crate) fn alignment_of(metadata: &Metadata) -> Result<u64, Problem> {
    match metadata.get("general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= u32::MAX as u64 => Ok(a),
            _ => Err(Problem::BadAlignment(format!("{v:?}"))),
        },
    }
}

/// An open GGUF file: parsed header, metadata and tensor infos over a memory map (or an
/// owned buffer); tensor data is handed out as borrowed slices.
pub struct GgufFile {
    storage: Storage,
    path: PathBuf,
    version: u32,
    alignment: u64,
    dialect: Dialect,
    data_start: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: std::collections::HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("dialect", &self.dialect)
            .field("kv_count", &self.metadata.len())
            .field("tensor_count", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and memory-maps a file. The whole structure is validated here; later calls
    /// cannot fail.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        Self::open_with(path, Residency::Mapped)
    }

    /// Opens a file, holding its bytes as `how` says (see `Residency`).
    pub fn open_with(path: impl AsRef<Path>, how: Residency) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let file = File::open(path).map_err(|e| GgufError::io(&label, e))?;
        let len = file.metadata().map_err(|e| GgufError::io(&label, e))?.len();
        let storage = Storage::open(&file, len, how, &label)?;
        Self::from_storage(storage, path.to_path_buf(), &label)
    }

    /// How the file's bytes are held: mapped, or copied into memory (what
    /// [`Residency::Auto`] chose, for a file opened that way).
    pub fn residency(&self) -> Residency {
        self.storage.residency()
    }

    /// Bytes of the file's memory that the kernel currently backs with 2 MiB pages; `None`
    /// where that cannot be read (off Linux).
    pub fn huge_page_bytes(&self) -> Option<u64> {
        super::host_memory::huge_page_bytes(self.bytes())
    }

    /// Parses a file held in memory; `label` names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, label: &str) -> Result<GgufFile, GgufError> {
        Self::from_storage(Storage::Bytes(bytes), PathBuf::from(label), label)
    }

    fn from_storage(storage: Storage, path: PathBuf, label: &str) -> Result<GgufFile, GgufError> {
        let p = parse(storage.bytes(), label)?;
        let by_name = p
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            storage,
            path,
            version: p.version,
            alignment: p.alignment,
            dialect: p.dialect,
            data_start: p.data_start,
            metadata: p.metadata,
            tensors: p.tensors,
            by_name,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Absolute file offset of the data section.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// Total file size in bytes.
    pub fn file_size(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor's payload (`nbytes` bytes), borrowed from the map. An info that does not
    /// belong to this file yields an empty slice rather than a panic.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = self.data_start.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(info.nbytes));
        match (start, end) {
            (Some(s), Some(e)) => self.bytes().get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.metadata.get_str("general.architecture")
    }
}
