//! The GGUF writer: metadata and tensor infos first, then each tensor's payload streamed to
//! disk in order (a lazy tensor is produced only when its turn comes), into a temporary file
//! in the target directory that is renamed over the target at the end.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::error::{GgufError, Problem};
use super::metadata::Metadata;
use super::read::{alignment_of, GgufFile, MAX_DIMS};
use super::value::{Value, ValueType};
use super::GGUF_MAGIC;
use crate::types::{Dialect, TensorType};

/// Where a tensor's payload comes from.
pub enum TensorSource<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
    /// Produced when the writer reaches this tensor, so only one such payload is in
    /// memory at a time.
    Lazy(Box<dyn FnOnce() -> io::Result<Vec<u8>> + Send + 'a>),
}

impl std::fmt::Debug for TensorSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorSource::Borrowed(b) => write!(f, "Borrowed({} bytes)", b.len()),
            TensorSource::Owned(b) => write!(f, "Owned({} bytes)", b.len()),
            TensorSource::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

struct PendingTensor<'a> {
    name: String,
    ne: Vec<u64>,
    raw_type: u32,
    nbytes: u64,
    source: TensorSource<'a>,
}

/// Builds a GGUF file. Tensors are written in the order they were added, each at the next
/// multiple of the alignment (upstream's packing rule).
pub struct GgufWriter<'a> {
    dialect: Dialect,
    version: u32,
    metadata: Metadata,
    tensors: Vec<PendingTensor<'a>>,
    names: HashSet<String>,
}

fn invalid(file: &str, problem: Problem) -> GgufError {
    GgufError::Invalid {
        file: file.to_owned(),
        problem,
    }
}

impl<'a> GgufWriter<'a> {
    /// A GGUF v3 writer whose type ids follow `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        GgufWriter {
            dialect,
            version: 3,
            metadata: Metadata::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// A writer holding everything in `file` (same version, dialect, metadata order, raw
    /// type ids, tensor order), borrowing the payloads: writing it reproduces the file.
    pub fn from_file(file: &'a GgufFile) -> Self {
        let mut w = GgufWriter::new(file.dialect());
        w.version = file.version();
        w.metadata = file.metadata().clone();
        for t in file.tensors() {
            w.names.insert(t.name.clone());
            w.tensors.push(PendingTensor {
                name: t.name.clone(),
                ne: t.ne.clone(),
                raw_type: t.raw_type,
                nbytes: t.nbytes,
                source: TensorSource::Borrowed(file.tensor_data(t)),
            });
        }
        w
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// GGUF version to write: 3 (default) or 2 (same layout).
    pub fn set_version(&mut self, version: u32) {
        self.version = version;
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.metadata.set(key, value);
    }

    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Adds a tensor of a known type; its id and size follow from the writer's dialect.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ne: &[u64],
        ty: TensorType,
        data: TensorSource<'a>,
    ) -> Result<(), GgufError> {
        let name = name.into();
        let bad = |problem: String| {
            invalid(
                "<new file>",
                Problem::BadTensor {
                    tensor: name.clone(),
                    problem,
                },
            )
        };
        let Some(raw_type) = ty.id(self.dialect) else {
            return Err(bad(self.dialect.refusal(ty).unwrap_or_default()));
        };
        let nbytes = ty
            .nbytes(ne)
            .ok_or_else(|| bad(format!("type {ty} cannot hold shape {ne:?}")))?;
        self.add_tensor_raw(name, ne, raw_type, nbytes, data)
    }

    /// Adds a tensor with an explicit raw type id and payload size (any id, including ones
    /// this crate does not know).
    pub fn add_tensor_raw(
        &mut self,
        name: impl Into<String>,
        ne: &[u64],
        raw_type: u32,
        nbytes: u64,
        data: TensorSource<'a>,
    ) -> Result<(), GgufError> {
        let name = name.into();
        let bad = |problem: String| {
            invalid(
                "<new file>",
                Problem::BadTensor {
                    tensor: name.clone(),
                    problem,
                },
            )
        };
        if ne.len() > MAX_DIMS as usize {
            return Err(bad(format!("{} dimensions (at most {MAX_DIMS})", ne.len())));
        }
        let len = match &data {
            TensorSource::Borrowed(b) => Some(b.len() as u64),
            TensorSource::Owned(b) => Some(b.len() as u64),
            TensorSource::Lazy(_) => None,
        };
        if let Some(len) = len.filter(|&l| l != nbytes) {
            return Err(bad(format!(
                "payload is {len} bytes, the type and shape need {nbytes}"
            )));
        }
        if self.names.contains(&name) {
            return Err(invalid("<new file>", Problem::DuplicateTensor(name)));
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            ne: ne.to_vec(),
            raw_type,
            nbytes,
            source: data,
        });
        Ok(())
    }

    /// Writes the file (temporary file + rename).
    pub fn write(self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        self.write_with_progress(path, &mut |_, _| {})
    }

    /// Writes the file, calling `progress(tensor name, payload bytes)` after each tensor.
    pub fn write_with_progress(
        self,
        path: impl AsRef<Path>,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<(), GgufError> {
        self.write_via_temp(path.as_ref(), progress, |_| ())
    }

    /// Writes the file like `write_with_progress`, first calling `on_temp` with the path of
    /// the temporary file (created, still empty) and keeping what it returns until the
    /// temporary file is renamed or removed: a caller can register the path for removal on a
    /// signal, which ends the process without running destructors.
    pub fn write_via_temp<Guard>(
        self,
        path: &Path,
        progress: &mut dyn FnMut(&str, u64),
        on_temp: impl FnOnce(&Path) -> Guard,
    ) -> Result<(), GgufError> {
        let label = path.display().to_string();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".gguf-write-");
        // Temporary files default to 0600; the finished model should get the usual mode
        // (0666 minus the umask), like any file the user creates.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| GgufError::io(&label, e))?;
        // Declared after `tmp`, so dropped before it on the error paths.
        let _guard = on_temp(tmp.path());
        {
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
            self.write_to(&mut out, &label, progress)?;
            out.flush().map_err(|e| GgufError::io(&label, e))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| GgufError::io(&label, e))?;
        tmp.persist(path)
            .map_err(|e| GgufError::io(&label, e.error))?;
        Ok(())
    }

    /// Writes the whole file to any sink (used by `write`, and to build files in memory).
    pub fn write_to(
        self,
        out: &mut dyn Write,
        label: &str,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<(), GgufError> {
        if self.version != 2 && self.version != 3 {
            return Err(invalid(label, Problem::UnsupportedVersion(self.version)));
        }
        let alignment = alignment_of(&self.metadata).map_err(|p| invalid(label, p))?;
        for (key, value) in self.metadata.iter() {
            check_value(value, 0).map_err(|problem| {
                invalid(
                    label,
                    Problem::BadValue {
                        key: key.to_owned(),
                        problem,
                    },
                )
            })?;
        }
        let io_err = |e: io::Error| GgufError::io(label, e);
        let mut w = Counting {
            inner: out,
            written: 0,
        };

        w.write_all(&GGUF_MAGIC).map_err(io_err)?;
        w.write_all(&self.version.to_le_bytes()).map_err(io_err)?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())
            .map_err(io_err)?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())
            .map_err(io_err)?;
        for (key, value) in self.metadata.iter() {
            write_string(&mut w, key).map_err(io_err)?;
            w.write_all(&value.value_type().code().to_le_bytes())
                .map_err(io_err)?;
            write_value(&mut w, value).map_err(io_err)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_string(&mut w, &t.name).map_err(io_err)?;
            w.write_all(&(t.ne.len() as u32).to_le_bytes())
                .map_err(io_err)?;
            for d in &t.ne {
                w.write_all(&d.to_le_bytes()).map_err(io_err)?;
            }
            w.write_all(&t.raw_type.to_le_bytes()).map_err(io_err)?;
            w.write_all(&offset.to_le_bytes()).map_err(io_err)?;
            offset = offset
                .checked_add(t.nbytes)
                .and_then(|o| o.checked_next_multiple_of(alignment))
                .ok_or_else(|| {
                    invalid(
                        label,
                        Problem::BadTensor {
                            tensor: t.name.clone(),
                            problem: "data section overflows 64 bits".into(),
                        },
                    )
                })?;
        }
        // The data section starts aligned. A file without tensors ends after its infos
        // (what llama.cpp's writer does), so pad only when data follows.
        if !self.tensors.is_empty() {
            pad_to(&mut w, alignment).map_err(io_err)?;
        }
        for t in self.tensors {
            let data: std::borrow::Cow<'_, [u8]> = match t.source {
                TensorSource::Borrowed(b) => b.into(),
                TensorSource::Owned(b) => b.into(),
                TensorSource::Lazy(f) => f().map_err(io_err)?.into(),
            };
            if data.len() as u64 != t.nbytes {
                return Err(invalid(
                    label,
                    Problem::BadTensor {
                        tensor: t.name,
                        problem: format!("payload is {} bytes, expected {}", data.len(), t.nbytes),
                    },
                ));
            }
            w.write_all(&data).map_err(io_err)?;
            pad_to(&mut w, alignment).map_err(io_err)?;
            progress(&t.name, t.nbytes);
        }
        Ok(())
    }
}

struct Counting<'w> {
    inner: &'w mut dyn Write,
    written: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad_to(w: &mut Counting<'_>, alignment: u64) -> io::Result<()> {
    let rem = w.written % alignment;
    if rem != 0 {
        let zeros = vec![0u8; (alignment - rem) as usize];
        w.write_all(&zeros)?;
    }
    Ok(())
}

fn write_string(w: &mut dyn Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// Array elements must all have the array's declared type.
fn check_value(value: &Value, depth: usize) -> Result<(), String> {
    if let Value::Array(a) = value {
        if depth >= super::read::MAX_ARRAY_NESTING {
            return Err("arrays nested too deeply for readers".into());
        }
        for (i, v) in a.values.iter().enumerate() {
            if v.value_type() != a.elem_type {
                return Err(format!(
                    "array of {} has a {} element at index {i}",
                    a.elem_type,
                    v.value_type()
                ));
            }
            check_value(v, depth + 1)?;
        }
    }
    Ok(())
}

fn write_value(w: &mut dyn Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U8(v) => w.write_all(&[*v]),
        Value::I8(v) => w.write_all(&v.to_le_bytes()),
        Value::U16(v) => w.write_all(&v.to_le_bytes()),
        Value::I16(v) => w.write_all(&v.to_le_bytes()),
        Value::U32(v) => w.write_all(&v.to_le_bytes()),
        Value::I32(v) => w.write_all(&v.to_le_bytes()),
        Value::F32(v) => w.write_all(&v.to_le_bytes()),
        Value::Bool(v) => w.write_all(&[u8::from(*v)]),
        Value::String(s) => write_string(w, s),
        Value::U64(v) => w.write_all(&v.to_le_bytes()),
        Value::I64(v) => w.write_all(&v.to_le_bytes()),
        Value::F64(v) => w.write_all(&v.to_le_bytes()),
        Value::Array(a) => {
            w.write_all(&a.elem_type.code().to_le_bytes())?;
            w.write_all(&(a.values.len() as u64).to_le_bytes())?;
            if a.elem_type == ValueType::U8 {
                // Token-type and byte arrays can be large; write them in one go.
                let bytes: Vec<u8> = a
                    .values
                    .iter()
                    .map(|v| if let Value::U8(b) = v { *b } else { 0 })
                    .collect();
                return w.write_all(&bytes);
            }
            for v in &a.values {
                write_value(w, v)?;
            }
            Ok(())
        }
    }
}
