//! The checks around every pass of an [`Objective`]: panics deep in burn turned into errors
//! (naming the module burn cannot differentiate twice), output shapes and finiteness, and the
//! gradient of every parameter present.

use super::*;

/// Run `f`, converting a panic (for example mismatched shapes deep in burn) into
/// [`CurvatureError::Forward`], or into [`CurvatureError::NotTwiceDifferentiable`] naming the
/// module when burn refuses to differentiate a backward pass.
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = crate::panic_message(&*payload);
        Err(not_twice_differentiable(&msg).unwrap_or(CurvatureError::Forward(msg)))
    })
}

/// burn 0.21's "Can't differentiate …" panics (burn-autodiff's module ops), with the module
/// that uses each operation and its twice-differentiable replacement.
fn not_twice_differentiable(msg: &str) -> Option<CurvatureError> {
    const KNOWN: [(&str, &str, &str); 7] = [
        (
            "linear_",
            "burn::nn::Linear",
            "import `curvature::nn::{Linear, LinearConfig}` instead (same API, built from matmul)",
        ),
        (
            "max pool2d",
            "burn::nn::pool::MaxPool2d",
            "import `curvature::nn::{MaxPool2d, MaxPool2dConfig}` instead (non-overlapping windows)",
        ),
        (
            "adaptive avg pool2d",
            "burn::nn::pool::AdaptiveAvgPool2d",
            "use `curvature::nets::layers::global_avg_pool2d` for a 1×1 output",
        ),
        (
            "avg pool 2d",
            "burn::nn::pool::AvgPool2d",
            "import `curvature::nn::{AvgPool2d, AvgPool2dConfig}` instead (non-overlapping windows)",
        ),
        (
            "embedding",
            "burn::nn::Embedding",
            "select rows of a weight matrix with `Tensor::select` (twice differentiable) instead",
        ),
        (
            "interpolate",
            "burn::tensor::module::interpolate",
            "there is no twice-differentiable replacement in curvature yet",
        ),
        (
            "deform conv",
            "burn::nn::conv::DeformConv2d",
            "there is no twice-differentiable replacement in curvature yet",
        ),
    ];
    let operation = msg.strip_prefix("Can't differentiate ")?;
    let (_, module, replacement) = KNOWN.iter().find(|(key, ..)| operation.starts_with(key))?;
    Some(CurvatureError::NotTwiceDifferentiable {
        operation: msg.to_string(),
        module,
        replacement,
    })
}

pub(super) fn check_outputs<BB: Backend, B: Backend, const D: usize>(
    z: &Tensor<BB, 2>,
    batch: &Batch<B, D>,
) -> Result<()> {
    let expected = [batch.len(), batch.num_outputs()];
    if z.dims() != expected {
        return Err(CurvatureError::InvalidBatch(format!(
            "model outputs have shape {:?} but the targets need {:?}",
            z.dims(),
            expected
        )));
    }
    Ok(())
}

pub(crate) fn check_finite_vec<B: Backend>(t: &Tensor<B, 1>, what: &str) -> Result<()> {
    if has_non_finite(t) {
        return Err(CurvatureError::NonFinite(what.to_string()));
    }
    Ok(())
}

pub(super) fn require_all<B: Backend>(
    layout: &ParamLayout,
    blocks: Vec<Option<Tensor<B, 1>>>,
) -> Result<Vec<Tensor<B, 1>>> {
    blocks
        .into_iter()
        .zip(layout.blocks())
        .map(|(b, blk)| b.ok_or_else(|| CurvatureError::MissingGradient(blk.name.clone())))
        .collect()
}

/// The gradient of every parameter of the layout, flattened, in layout order.
pub(crate) fn collect_grads<AB: AutodiffBackend, M: Module<AB>>(
    layout: &ParamLayout,
    module: &M,
    grads: &AB::Gradients,
) -> Vec<Option<Tensor<AB::InnerBackend, 1>>> {
    struct GradCollector<'a, AB: AutodiffBackend> {
        layout: &'a ParamLayout,
        grads: &'a AB::Gradients,
        out: Vec<Option<Tensor<AB::InnerBackend, 1>>>,
    }
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for GradCollector<'_, AB> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            if let Some(i) = self.layout.position(&param.id) {
                let n = self.layout.blocks()[i].len;
                self.out[i] = param
                    .val()
                    .grad(self.grads)
                    .map(|g| crate::layout::contiguous(g).reshape([n]));
            }
        }
    }
    let mut c = GradCollector::<AB> {
        layout,
        grads,
        out: vec![None; layout.blocks().len()],
    };
    module.visit(&mut c);
    c.out
}
