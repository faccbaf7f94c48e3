//! Reading the weights of a checkpoint: one `model.safetensors` or a sharded set listed in
//! `model.safetensors.index.json`. Files are memory-mapped; tensors are handed out as
//! zero-copy byte slices, and converted to f32 only one tensor at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::SafeTensors;

use super::error::ConvertError;

/// Element types of safetensors tensors that the converter handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    F64,
    U8,
    I8,
    Other(&'static str),
}

impl Dtype {
    fn from_safetensors(d: safetensors::Dtype) -> Dtype {
        use safetensors::Dtype as D;
        match d {
            D::F32 => Dtype::F32,
            D::F16 => Dtype::F16,
            D::BF16 => Dtype::BF16,
            D::F64 => Dtype::F64,
            D::U8 => Dtype::U8,
            D::I8 => Dtype::I8,
            D::BOOL => Dtype::Other("BOOL"),
            D::I16 => Dtype::Other("I16"),
            D::U16 => Dtype::Other("U16"),
            D::I32 => Dtype::Other("I32"),
            D::U32 => Dtype::Other("U32"),
            D::I64 => Dtype::Other("I64"),
            D::U64 => Dtype::Other("U64"),
            _ => Dtype::Other("8-bit/4-bit float"),
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::Other(_) => 0,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
    }
}

#[derive(Clone, Debug)]
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// One tensor of the checkpoint, borrowed from the mapped file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

impl TensorView<'_> {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements as f32 (exact for f16/bf16; f64 is rounded).
    pub fn to_f32(&self) -> Result<Vec<f32>, ConvertError> {
        let n = self.n_elements();
        let mut out = vec![0f32; n];
        self.to_f32_into(&mut out)?;
        Ok(out)
    }

    pub fn to_f32_into(&self, out: &mut [f32]) -> Result<(), ConvertError> {
        const CHUNK: usize = 1 << 16;
        let size = self.dtype.size();
        if !self.dtype.is_float() {
            return Err(ConvertError::Tensor {
                name: self.name.to_owned(),
                message: format!("expected a floating-point tensor, found {:?}", self.dtype),
            });
        }
        debug_assert_eq!(out.len() * size, self.data.len());
        let dtype = self.dtype;
        out.par_chunks_mut(CHUNK)
            .zip(self.data.par_chunks(CHUNK * size))
            .for_each(|(o, b)| match dtype {
                Dtype::F32 => {
                    for (x, c) in o.iter_mut().zip(b.chunks_exact(4)) {
                        *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
                Dtype::F16 => {
                    for (x, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                        *x = f16::from_le_bytes([c[0], c[1]]).to_f32();
                    }
                }
                Dtype::BF16 => {
                    for (x, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                        *x = bf16::from_le_bytes([c[0], c[1]]).to_f32();
                    }
                }
                Dtype::F64 => {
                    for (x, c) in o.iter_mut().zip(b.chunks_exact(8)) {
                        *x = f64::from_le_bytes(c.try_into().unwrap()) as f32;
                    }
                }
                _ => unreachable!("checked above"),
            });
        Ok(())
    }
}

/// All weights of a checkpoint directory, memory-mapped.
pub struct Checkpoint {
    files: Vec<(PathBuf, Mmap)>,
    entries: BTreeMap<String, Entry>,
}

impl Checkpoint {
    /// Opens `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Checkpoint, ConvertError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let shard_paths: Vec<PathBuf> = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| ConvertError::io(&index, e))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|source| ConvertError::Json {
                    path: index.clone(),
                    source,
                })?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ConvertError::config(&index, "no \"weight_map\" object"))?;
            let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for n in &names {
                if n.contains('/') || n.contains('\\') || n.starts_with("..") {
                    return Err(ConvertError::config(
                        &index,
                        format!("shard name {n:?} is not a plain file name"),
                    ));
                }
            }
            names.into_iter().map(|n| dir.join(n)).collect()
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(ConvertError::MissingFile {
                path: single,
                what: "weights (model.safetensors or model.safetensors.index.json)",
            });
        };

        let mut files = Vec::with_capacity(shard_paths.len());
        let mut entries = BTreeMap::new();
        for path in shard_paths {
            let file = std::fs::File::open(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ConvertError::MissingFile {
                        path: path.clone(),
                        what: "safetensors shard",
                    }
                } else {
                    ConvertError::io(&path, e)
                }
            })?;
            // SAFETY: the file is opened read-only and only read; a checkpoint modified while
            // converting is outside what any converter can guard against.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ConvertError::io(&path, e))?;
            let file_idx = files.len();
            {
                let st =
                    SafeTensors::deserialize(&mmap).map_err(|e| ConvertError::Safetensors {
                        path: path.clone(),
                        message: describe_safetensors_error(&e, mmap.len()),
                    })?;
                let base = mmap.as_ptr() as usize;
                for (name, view) in st.iter() {
                    let start = view.data().as_ptr() as usize - base;
                    let end = start + view.data().len();
                    let dtype = Dtype::from_safetensors(view.dtype());
                    let entry = Entry {
                        file: file_idx,
                        dtype,
                        shape: view.shape().to_vec(),
                        start,
                        end,
                    };
                    if entries.insert(name.to_owned(), entry).is_some() {
                        return Err(ConvertError::Safetensors {
                            path: path.clone(),
                            message: format!("tensor {name} appears in more than one shard"),
                        });
                    }
                }
            }
            files.push((path, mmap));
        }
        Ok(Checkpoint { files, entries })
    }

    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        let (key, e) = self.entries.get_key_value(name)?;
        Some(TensorView {
            name: key,
            dtype: e.dtype,
            shape: &e.shape,
            data: &self.files[e.file].1[e.start..e.end],
        })
    }

    pub fn require(&self, name: &str) -> Result<TensorView<'_>, ConvertError> {
        self.get(name).ok_or_else(|| ConvertError::MissingTensor {
            name: name.to_owned(),
        })
    }

    /// Drops the mapped pages of a tensor that has been consumed, so that the process's
    /// resident memory stays near one tensor instead of growing to the whole checkpoint (the
    /// pages stay in the page cache; reading the tensor again simply faults them back in).
    pub fn release(&self, name: &str) {
        #[cfg(unix)]
        if let Some(e) = self.entries.get(name) {
            const PAGE: usize = 4096;
            let start = e.start.div_ceil(PAGE) * PAGE;
            let end = e.end / PAGE * PAGE;
            if end > start {
                let mmap = &self.files[e.file].1;
                // SAFETY: the mapping is a read-only file mapping that no slice outlives across
                // this call in a way that matters: MADV_DONTNEED on it only discards the
                // process's copies of the pages, and later reads fault the file contents in
                // again, unchanged.
                let _ = unsafe {
                    mmap.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = name;
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// Total size of all tensor payloads.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| (e.end - e.start) as u64)
            .sum()
    }

    /// Shard file paths (for messages).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }
}

fn describe_safetensors_error(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer | E::HeaderTooSmall => {
            format!("file is truncated or incomplete ({len} bytes): {e}")
        }
        _ => e.to_string(),
    }
}
