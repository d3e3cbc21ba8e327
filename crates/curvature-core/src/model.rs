//! What a model must provide for its curvature to be computed.
//!
//! Curvature products need the *same* model at three autodiff depths: the plain backend `B`
//! (forward-only evaluation), `Autodiff<B>` (gradients) and `Autodiff<Autodiff<B>>` (exact
//! Hessian-vector products by reverse-over-reverse differentiation). A model type written
//! generically over its backend — `#[derive(Module)] struct Mlp<B: Backend>` with a generic
//! [`Network`] impl — satisfies [`CurvatureModel`] automatically.

use burn::backend::Autodiff;
use burn::module::{HasAutodiffModule, Module};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// One level of reverse-mode autodiff over `B`.
pub type Ad<B> = Autodiff<B>;
/// Two nested levels of reverse-mode autodiff over `B` (reverse-over-reverse).
pub type Ad2<B> = Autodiff<Autodiff<B>>;

/// How batch-normalisation layers normalise during a forward pass.
///
/// Curvature can be measured in either mode and the two differ, often by orders of magnitude
/// (Granziol, *Flatness is a False Friend*, §4): in [`Train`](BatchNormMode::Train) mode each
/// example's output depends on the whole batch through the batch statistics, in
/// [`Eval`](BatchNormMode::Eval) mode the running statistics are constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BatchNormMode {
    /// Normalise with the statistics of the current batch (differentiated through).
    #[default]
    Train,
    /// Normalise with the stored running statistics (constants).
    Eval,
}

/// A network mapping a batch of inputs `[N, ...]` (a rank-`D` tensor) to outputs `[N, K]`
/// (logits for classification, predictions for regression).
///
/// Implementations must be built from twice-differentiable operations (the layers of
/// `curvature-nets`), must not mutate any state in `output`, and must treat the batch
/// dimension as the first one.
pub trait Network<B: Backend, const D: usize>: Module<B> {
    /// Outputs `[N, K]` for inputs `[N, ...]`, with batch norm in the given mode.
    fn output(&self, input: Tensor<B, D>, mode: BatchNormMode) -> Tensor<B, 2>;
}

/// A model whose exact curvature can be computed: a [`Network`] on `B` that also exists, with
/// the same parameters, on `Autodiff<B>` and `Autodiff<Autodiff<B>>`.
///
/// Implemented automatically (blanket impl) for every `#[derive(Module)]` type that implements
/// [`Network`] generically over its backend.
pub trait CurvatureModel<B: Backend, const D: usize>:
    Network<B, D>
    + HasAutodiffModule<
        Ad<B>,
        TrainModule: Network<Ad<B>, D> + HasAutodiffModule<Ad2<B>, TrainModule: Network<Ad2<B>, D>>,
    >
{
}

impl<B, const D: usize, M> CurvatureModel<B, D> for M
where
    B: Backend,
    M: Network<B, D>
        + HasAutodiffModule<
            Ad<B>,
            TrainModule: Network<Ad<B>, D>
                             + HasAutodiffModule<Ad2<B>, TrainModule: Network<Ad2<B>, D>>,
        >,
{
}

/// The model type on `Autodiff<B>` (the "train" module).
pub type Train<B, M> = <M as HasAutodiffModule<Ad<B>>>::TrainModule;
/// The model type on `Autodiff<Autodiff<B>>`.
pub type Train2<B, M> = <Train<B, M> as HasAutodiffModule<Ad2<B>>>::TrainModule;
