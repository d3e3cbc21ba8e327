//! Flat parameter vectors for any burn [`Module`].
//!
//! Curvature operators act on vectors `w ∈ R^P` holding every trainable float parameter of a
//! model. [`ParamLayout`] fixes how the parameter tensors are laid out in such a vector:
//!
//! * **Order** — the order in which burn's `Module::visit` reaches the parameters, which for
//!   `#[derive(Module)]` types is the order of the struct fields, depth first (the same order
//!   as PyTorch's `module.parameters()` for the layers of `curvature-nets`).
//! * **Layout within a block** — row-major (C order) over the tensor's shape.
//! * **Which parameters** — float parameters that require gradients. Running statistics of
//!   batch norm and parameters frozen with `set_require_grad(false)` are not included.
//!
//! Each block carries its dotted path (`layers.0.weight`), [`ParamId`], shape and offset, so
//! that later code can address per-layer blocks (block spectra, KFAC).

use std::collections::HashMap;
use std::ops::Range;

use burn::backend::Autodiff;
use burn::module::{
    AutodiffModule, HasAutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId,
};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;

use crate::error::{CurvatureError, Result};
use crate::module_path::ModulePath;

/// One parameter tensor's place in the flat vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamBlock {
    /// Dotted module path, e.g. `layers.1.weight`.
    pub name: String,
    /// burn's parameter id (stable across autodiff levels and record round trips).
    #[serde(skip)]
    pub id: ParamId,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat vector.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

impl ParamBlock {
    /// The index range of this block in the flat vector.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The layout of a model's trainable parameters in a flat vector (see the [module docs](self)).
#[derive(Debug, Clone, Serialize)]
pub struct ParamLayout {
    blocks: Vec<ParamBlock>,
    #[serde(skip)]
    index: HashMap<ParamId, usize>,
    dim: usize,
}

impl ParamLayout {
    /// The layout of a module on an autodiff backend, where "trainable" is well defined
    /// (`is_require_grad`). For a model on a plain backend, apply [`mark_trainable`] and lift
    /// it with `model.train::<Autodiff<B>>()` first (what [`Objective::new`](crate::Objective::new)
    /// does).
    ///
    /// # Errors
    /// [`CurvatureError::NoParameters`] if the module has no trainable float parameter.
    pub fn of<AB: AutodiffBackend, M: Module<AB>>(module: &M) -> Result<Self> {
        let mut builder = LayoutBuilder {
            path: ModulePath::new(),
            blocks: Vec::new(),
            dim: 0,
        };
        module.visit(&mut builder);
        if builder.blocks.is_empty() {
            return Err(CurvatureError::NoParameters);
        }
        let index = builder
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id, i))
            .collect();
        Ok(Self {
            blocks: builder.blocks,
            index,
            dim: builder.dim,
        })
    }

    /// The layout of a model on a plain backend: every float parameter, not the running
    /// statistics (see [`mark_trainable`]). `ParamLayout::of_model(&model)?.dim()` is the
    /// number of trainable parameters.
    ///
    /// # Errors
    /// [`CurvatureError::NoParameters`] if the model has no float parameter.
    pub fn of_model<B: Backend, M: Module<B> + HasAutodiffModule<Autodiff<B>>>(
        model: &M,
    ) -> Result<Self> {
        Self::of(
            &<M::TrainModule as AutodiffModule<Autodiff<B>>>::from_inner(mark_trainable(
                model.clone(),
            )),
        )
    }

    /// Total number of trainable parameters `P`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The blocks in flat-vector order.
    pub fn blocks(&self) -> &[ParamBlock] {
        &self.blocks
    }

    /// The block with the given dotted name.
    pub fn block(&self, name: &str) -> Option<&ParamBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// Position of a parameter in [`blocks`](Self::blocks), if it is part of the layout.
    pub fn position(&self, id: &ParamId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Check that a flat vector has length `P`.
    ///
    /// # Errors
    /// [`CurvatureError::DimensionMismatch`] otherwise.
    pub fn check<B: Backend>(&self, v: &Tensor<B, 1>, what: &str) -> Result<()> {
        let got = v.dims()[0];
        if got != self.dim {
            return Err(CurvatureError::DimensionMismatch {
                what: what.to_string(),
                expected: self.dim,
                got,
            });
        }
        Ok(())
    }

    /// Read the module's parameters into one flat vector (on the module's backend `B`).
    ///
    /// Works on any backend: parameters are matched by [`ParamId`].
    ///
    /// # Errors
    /// [`CurvatureError::DimensionMismatch`] if the module's parameters do not match the
    /// layout (a different architecture).
    pub fn flatten<B: Backend, M: Module<B>>(&self, module: &M) -> Result<Tensor<B, 1>> {
        let mut c = Collector {
            layout: self,
            out: vec![None; self.blocks.len()],
            error: None,
        };
        module.visit(&mut c);
        if let Some(e) = c.error {
            return Err(e);
        }
        let parts = c
            .out
            .into_iter()
            .zip(&self.blocks)
            .map(|(t, b)| {
                t.ok_or_else(|| CurvatureError::DimensionMismatch {
                    what: format!(
                        "module parameters (block `{}` not found: a different model?)",
                        b.name
                    ),
                    expected: self.dim,
                    got: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(parts, 0))
    }

    /// Split a flat vector into per-block flat tensors (views in layout order).
    ///
    /// # Errors
    /// [`CurvatureError::DimensionMismatch`] if `v` does not have length `P`.
    pub fn split<B: Backend>(&self, v: &Tensor<B, 1>) -> Result<Vec<Tensor<B, 1>>> {
        self.check(v, "flat vector")?;
        Ok(self
            .blocks
            .iter()
            .map(|b| v.clone().slice([b.range()]))
            .collect())
    }

    /// Write a flat vector (on the inner backend) into the module's trainable parameters, as
    /// fresh autodiff leaves that require gradients. Parameters outside the layout (running
    /// statistics, frozen tensors) are untouched.
    ///
    /// # Errors
    /// [`CurvatureError::DimensionMismatch`] if `theta` has the wrong length or a parameter's
    /// shape differs from the layout.
    pub fn load<AB: AutodiffBackend, M: Module<AB>>(
        &self,
        module: M,
        theta: Tensor<AB::InnerBackend, 1>,
    ) -> Result<M> {
        self.check(&theta, "parameter vector")?;
        let mut loader = Loader::<AB> {
            layout: self,
            theta,
            error: None,
        };
        let module = module.map(&mut loader);
        match loader.error {
            Some(e) => Err(e),
            None => Ok(module),
        }
    }
}

/// Mark every float [`Param`] of a plain-backend module as trainable (requiring gradients);
/// running statistics ([`RunningState`](burn::module::RunningState)) are not parameters and
/// stay untouched.
///
/// Why: on a plain (non-autodiff) backend burn 0.21 cannot keep a parameter's
/// `require_grad` flag reliably — `Param::clone` of an initialised parameter resets it to the
/// tensor's (always `false` there). Curvature is always taken with respect to all parameters
/// of the model, so the flag is restored here. Custom load/save mappers of parameters are not
/// preserved.
pub fn mark_trainable<B: Backend, M: Module<B>>(module: M) -> M {
    struct Mark;
    impl<B: Backend> ModuleMapper<B> for Mark {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, value, _) = param.consume();
            let device = value.device();
            let shape = value.shape();
            // A lazily "initialised" parameter whose initialiser returns the existing value:
            // the only public constructor that sets the `require_grad` flag explicitly.
            Param::uninitialized(id, move |_, _| value.clone(), device, true, shape)
        }
    }
    module.map(&mut Mark)
}

struct LayoutBuilder {
    path: ModulePath,
    blocks: Vec<ParamBlock>,
    dim: usize,
}

impl<B: Backend> ModuleVisitor<B> for LayoutBuilder {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        if !t.is_require_grad() {
            return;
        }
        let shape = t.dims().to_vec();
        let len = shape.iter().product();
        self.blocks.push(ParamBlock {
            name: self.path.dotted(),
            id: param.id,
            shape,
            offset: self.dim,
            len,
        });
        self.dim += len;
    }
}

struct Collector<'a, B: Backend> {
    layout: &'a ParamLayout,
    out: Vec<Option<Tensor<B, 1>>>,
    error: Option<CurvatureError>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(i) = self.layout.position(&param.id) else {
            return;
        };
        let block = &self.layout.blocks[i];
        let t = param.val();
        if t.dims().as_slice() != block.shape.as_slice() {
            self.error.get_or_insert(CurvatureError::DimensionMismatch {
                what: format!(
                    "parameter `{}` (shape {:?} vs layout {:?})",
                    block.name,
                    t.dims(),
                    block.shape
                ),
                expected: block.len,
                got: t.shape().num_elements(),
            });
            return;
        }
        self.out[i] = Some(t.reshape([block.len]));
    }
}

struct Loader<'a, AB: AutodiffBackend> {
    layout: &'a ParamLayout,
    theta: Tensor<AB::InnerBackend, 1>,
    error: Option<CurvatureError>,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for Loader<'_, AB> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let Some(i) = self.layout.position(&param.id) else {
            return param;
        };
        let block = &self.layout.blocks[i];
        let (id, t, mapper) = param.consume();
        let dims = t.dims();
        if dims.as_slice() != block.shape.as_slice() {
            self.error.get_or_insert(CurvatureError::DimensionMismatch {
                what: format!(
                    "parameter `{}` (shape {:?} vs layout {:?})",
                    block.name, dims, block.shape
                ),
                expected: block.len,
                got: t.shape().num_elements(),
            });
            return Param::from_mapped_value(id, t, mapper);
        }
        let value = self.theta.clone().slice([block.range()]).reshape(dims);
        Param::from_mapped_value(id, Tensor::from_inner(value).require_grad(), mapper)
    }
}
