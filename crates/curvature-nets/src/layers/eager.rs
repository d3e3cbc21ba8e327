//! Eager parameter initialisation.
//!
//! burn 0.21 initialises parameters lazily, and cloning a module whose parameters were never
//! read gives each clone its *own* pending initialiser: `model.clone()` before first use
//! yields different random weights. Curvature code clones models constantly (objectives,
//! finite differences, references), so every layer of this crate materialises its
//! parameters when it is built.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Force the initialisation of every float parameter of `module`.
pub(crate) fn materialize<B: Backend, M: Module<B>>(module: M) -> M {
    module.visit(&mut Materialize);
    module
}
