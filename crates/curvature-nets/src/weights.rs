//! Weights in safetensors files with PyTorch tensor names and layouts.
//!
//! Every layer of this crate stores its tensors in PyTorch's layout — dense `weight [out, in]`,
//! convolution `weight [out, in/groups, kh, kw]`, `bias [out]`, batch norm `weight`, `bias`,
//! `running_mean`, `running_var` — so a model's state is its module tree written out: the
//! tensor name is the dotted module path (`layers.0.weight`, `stages.1.3.conv2.weight`,
//! `norms.4.running_var`). The names of each model are listed in `docs/models.md`; a rename
//! function maps them to and from another code base's `state_dict` names (for example the
//! `features.0.weight` of a PyTorch `nn.Sequential`).
//!
//! Files are written in f32 (PyTorch's default); f32, f64 and f16/bf16 files are read.
//! PyTorch's `num_batches_tracked` buffers are ignored on load.

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{NetsError, Result};
use curvature_core::ModulePath;

fn weights_error(path: &Path, reason: impl Into<String>) -> NetsError {
    NetsError::Weights {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

struct Exporter<'a> {
    path: ModulePath,
    rename: &'a dyn Fn(&str) -> String,
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
}

impl<B: Backend> ModuleVisitor<B> for Exporter<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let bytes = t
            .into_data()
            .iter::<f32>()
            .flat_map(f32::to_le_bytes)
            .collect();
        self.tensors
            .push(((self.rename)(&self.path.dotted()), shape, bytes));
    }
}

/// Write every float tensor of `module` (parameters and running statistics) to a safetensors
/// file, named by `rename(module path)`. The file is written atomically (temporary file, then
/// rename).
///
/// # Errors
/// [`NetsError::Weights`] for duplicate names after renaming or an I/O failure.
pub fn save_safetensors<B: Backend, M: Module<B>>(
    module: &M,
    path: impl AsRef<Path>,
    rename: &dyn Fn(&str) -> String,
) -> Result<()> {
    let path = path.as_ref();
    let mut exporter = Exporter {
        path: ModulePath::new(),
        rename,
        tensors: Vec::new(),
    };
    module.visit(&mut exporter);
    let mut seen = BTreeSet::new();
    let mut views = Vec::new();
    for (name, shape, bytes) in &exporter.tensors {
        if !seen.insert(name.clone()) {
            return Err(weights_error(path, format!("two tensors named `{name}`")));
        }
        views.push((
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| weights_error(path, e.to_string()))?,
        ));
    }
    let bytes =
        safetensors::serialize(views, None).map_err(|e| weights_error(path, e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| weights_error(path, e.to_string()))
}

/// Write `bytes` to `path` atomically: into a uniquely named temporary file beside it,
/// flushed to disk (`fsync`), then renamed over `path` (`tempfile`'s `persist`). A crash or an
/// interrupted run leaves the old file or the new one, never half of one, and two writers
/// never share a temporary name. Every file Curvature writes goes through this.
///
/// # Errors
/// The I/O error of creating, writing, syncing or renaming.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

struct Importer<'a, 'd> {
    path: ModulePath,
    file: &'a Path,
    rename: &'a dyn Fn(&str) -> String,
    tensors: &'a SafeTensors<'d>,
    used: BTreeSet<String>,
    error: Option<NetsError>,
}

fn to_f32(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let d = view.data();
    Some(match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|b| burn::tensor::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        _ => return None,
    })
}

impl<B: Backend> ModuleMapper<B> for Importer<'_, '_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.error.is_some() {
            return param;
        }
        let name = (self.rename)(&self.path.dotted());
        let view = match self.tensors.tensor(&name) {
            Ok(v) => v,
            Err(_) => {
                self.error = Some(weights_error(
                    self.file,
                    format!("no tensor `{name}` (module path `{}`)", self.path.dotted()),
                ));
                return param;
            }
        };
        let (id, t, mapper) = param.consume();
        let dims = t.dims();
        if view.shape() != dims.as_slice() {
            self.error = Some(weights_error(
                self.file,
                format!(
                    "tensor `{name}` has shape {:?}, the model expects {:?}",
                    view.shape(),
                    dims
                ),
            ));
            return Param::from_mapped_value(id, t, mapper);
        }
        let Some(values) = to_f32(&view) else {
            self.error = Some(weights_error(
                self.file,
                format!("tensor `{name}` has unsupported dtype {:?}", view.dtype()),
            ));
            return Param::from_mapped_value(id, t, mapper);
        };
        if values.iter().any(|v| !v.is_finite()) {
            self.error = Some(weights_error(
                self.file,
                format!("tensor `{name}` holds NaN or infinite values"),
            ));
            return Param::from_mapped_value(id, t, mapper);
        }
        self.used.insert(name);
        let new = Tensor::<B, D>::from_data(TensorData::new(values, dims), &t.device())
            .set_require_grad(t.is_require_grad());
        Param::from_mapped_value(id, new, mapper)
    }
}

/// Load every float tensor of `module` from a safetensors file (names: `rename(module path)`).
/// Returns the module and the names of file tensors it did not use (other than
/// `num_batches_tracked`).
///
/// # Errors
/// [`NetsError::Weights`] naming the file for an unreadable file, a missing tensor, a shape
/// mismatch, an unsupported dtype or non-finite values.
pub fn load_safetensors<B: Backend, M: Module<B>>(
    module: M,
    path: impl AsRef<Path>,
    rename: &dyn Fn(&str) -> String,
) -> Result<(M, Vec<String>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| weights_error(path, e.to_string()))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| weights_error(path, format!("not a safetensors file: {e}")))?;
    let mut importer = Importer {
        path: ModulePath::new(),
        file: path,
        rename,
        tensors: &tensors,
        used: BTreeSet::new(),
        error: None,
    };
    let module = module.map(&mut importer);
    if let Some(e) = importer.error {
        return Err(e);
    }
    let mut unused: Vec<String> = tensors
        .names()
        .into_iter()
        .filter(|n| !importer.used.contains(*n) && !n.ends_with("num_batches_tracked"))
        .map(str::to_string)
        .collect();
    unused.sort();
    Ok((module, unused))
}

/// The identity renaming: tensor names are module paths.
pub fn module_path(name: &str) -> String {
    name.to_string()
}
