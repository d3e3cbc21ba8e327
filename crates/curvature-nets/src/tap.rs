//! Layer taps: the inputs and pre-activation gradients of every [`Dense`] and [`Conv2d`]
//! layer in a forward pass, for Kronecker-factored curvature (KFAC, Martens & Grosse 2015;
//! KFC for convolutions, Grosse & Martens 2016).
//!
//! Inside [`tap`], each `Dense`/`Conv2d` forward on the tapped backend records
//!
//! - its input `a`, detached from the graph, and
//! - a **probe**: a zero tensor of the output's shape, marked as a gradient leaf and *added* to
//!   the output. The output's value is unchanged, and after `backward` the probe's gradient is
//!   exactly `∂L/∂s`, the gradient with respect to the layer's pre-activation `s = Wa + b`
//!   (the KFAC "`g`"), per example and — for convolutions — per spatial position.
//!
//! Only forwards on the backend named in `tap::<B, _>` are recorded (the autodiff backend of the
//! training step); forwards on other backends inside the closure are untouched. Outside a
//! `tap` the layers pay one thread-local lookup.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::Tensor;
//! use curvature_nets::{DenseConfig, tap};
//!
//! type AB = Autodiff<NdArray<f64>>;
//! let dev = Default::default();
//! let layer = DenseConfig::new(3, 2).init::<AB>(&dev).unwrap();
//! let x = Tensor::<AB, 2>::ones([4, 3], &dev);
//! let (y, taps) = tap::tap::<AB, _>(|| layer.forward(x));
//! let grads = y.sum().backward();
//! let tap::Tap::Dense { probe, .. } = &taps[0] else { unreachable!() };
//! // ∂(Σ y)/∂s = 1 for every example and output.
//! let g = probe.grad(&grads).unwrap();
//! assert_eq!(g.into_data().to_vec::<f64>().unwrap(), vec![1.0; 8]);
//! ```

use std::any::Any;
use std::cell::RefCell;

use burn::module::ParamId;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::layers::{Conv2d, Dense};

/// What one tapped layer application recorded.
#[derive(Debug, Clone)]
pub enum Tap<B: Backend> {
    /// A [`Dense`] layer.
    Dense {
        /// Id of the weight `[out, in]`.
        weight: ParamId,
        /// Id of the bias `[out]`, if any.
        bias: Option<ParamId>,
        /// The layer input `[N, in]`, detached.
        input: Tensor<B, 2>,
        /// The zero probe `[N, out]` added to the output; its gradient is `∂L/∂s`.
        probe: Tensor<B, 2>,
    },
    /// A [`Conv2d`] layer.
    Conv2d {
        /// Id of the weight `[out, in/groups, kh, kw]`.
        weight: ParamId,
        /// Id of the bias `[out]`, if any.
        bias: Option<ParamId>,
        /// The layer input `[N, C, H, W]`, detached.
        input: Tensor<B, 4>,
        /// The zero probe `[N, out, H', W']` added to the output.
        probe: Tensor<B, 4>,
        /// Kernel size `[kh, kw]`.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding.
        padding: [usize; 2],
        /// Dilation.
        dilation: [usize; 2],
        /// Groups.
        groups: usize,
    },
}

impl<B: Backend> Tap<B> {
    /// Id of the layer's weight.
    pub fn weight(&self) -> ParamId {
        match self {
            Tap::Dense { weight, .. } | Tap::Conv2d { weight, .. } => *weight,
        }
    }

    /// Id of the layer's bias.
    pub fn bias(&self) -> Option<ParamId> {
        match self {
            Tap::Dense { bias, .. } | Tap::Conv2d { bias, .. } => *bias,
        }
    }
}

thread_local! {
    /// A stack of active taps, each a `Vec<Tap<B>>` for its backend `B`.
    static TAPES: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Pops the tape pushed by [`tap`] even if the closure panics.
struct PopOnDrop;

impl Drop for PopOnDrop {
    fn drop(&mut self) {
        TAPES.with(|t| {
            t.borrow_mut().pop();
        });
    }
}

/// Run `forward` and return its result with the [`Tap`]s of every `Dense` and `Conv2d`
/// forward on backend `B` inside it, in call order (see the [module docs](self)). Taps nest:
/// an inner `tap` records into its own list.
pub fn tap<B: Backend, R>(forward: impl FnOnce() -> R) -> (R, Vec<Tap<B>>) {
    TAPES.with(|t| t.borrow_mut().push(Box::new(Vec::<Tap<B>>::new())));
    let guard = PopOnDrop;
    let out = forward();
    let taps = TAPES.with(|t| {
        let mut stack = t.borrow_mut();
        let top = stack.last_mut().expect("pushed above");
        std::mem::take(
            top.downcast_mut::<Vec<Tap<B>>>()
                .expect("the top tape is ours"),
        )
    });
    drop(guard);
    (out, taps)
}

/// Add a probe to `output` and record the tap if a tape for `B` is active.
fn record<B: Backend, const D: usize>(
    output: Tensor<B, D>,
    make: impl FnOnce(Tensor<B, D>) -> Tap<B>,
) -> Tensor<B, D> {
    TAPES.with(|t| {
        let mut stack = t.borrow_mut();
        match stack
            .last_mut()
            .and_then(|top| top.downcast_mut::<Vec<Tap<B>>>())
        {
            Some(tape) => {
                let probe = Tensor::<B, D>::zeros(output.shape(), &output.device()).require_grad();
                tape.push(make(probe.clone()));
                output + probe
            }
            None => output,
        }
    })
}

pub(crate) fn dense<B: Backend>(
    layer: &Dense<B>,
    input: &Tensor<B, 2>,
    output: Tensor<B, 2>,
) -> Tensor<B, 2> {
    record(output, |probe| Tap::Dense {
        weight: layer.weight.id,
        bias: layer.bias.as_ref().map(|b| b.id),
        input: input.clone().detach(),
        probe,
    })
}

pub(crate) fn conv2d<B: Backend>(
    layer: &Conv2d<B>,
    input: &Tensor<B, 4>,
    output: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let dims = layer.weight.dims();
    record(output, |probe| Tap::Conv2d {
        weight: layer.weight.id,
        bias: layer.bias.as_ref().map(|b| b.id),
        input: input.clone().detach(),
        probe,
        kernel: [dims[2], dims[3]],
        stride: layer.stride,
        padding: layer.padding,
        dilation: layer.dilation,
        groups: layer.groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conv2dConfig, DenseConfig};
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;

    type B = NdArray<f64>;
    type AB = Autodiff<B>;

    #[test]
    fn probes_carry_pre_activation_gradients_and_leave_outputs_unchanged() {
        let dev = Default::default();
        let l1 = DenseConfig::new(3, 4).init::<AB>(&dev).unwrap();
        let l2 = DenseConfig::new(4, 2).init::<AB>(&dev).unwrap();
        let x = Tensor::<AB, 2>::random([5, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let plain = l2.forward(l1.forward(x.clone()).tanh());
        let (y, taps) = tap::<AB, _>(|| l2.forward(l1.forward(x.clone()).tanh()));
        assert_eq!(taps.len(), 2);
        let diff = (y.clone() - plain).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
        // L = Σ y²/2: ∂L/∂s₂ = y, and ∂L/∂s₁ = (y W₂) ⊙ (1 − tanh²(s₁)).
        let grads = (y.clone() * y.clone()).sum().mul_scalar(0.5).backward();
        let Tap::Dense { probe: p2, .. } = &taps[1] else {
            panic!()
        };
        let Tap::Dense {
            probe: p1, input, ..
        } = &taps[0]
        else {
            panic!()
        };
        let g2 = p2.grad(&grads).unwrap();
        let y_inner = y.inner();
        assert!((g2.clone() - y_inner).abs().max().into_scalar() < 1e-14);
        let s1 = l1.valid().forward(input.clone().inner());
        let expected = g2.matmul(l2.valid().weight.val()) * (s1.tanh().powi_scalar(2).neg() + 1.0);
        let g1 = p1.grad(&grads).unwrap();
        assert!((g1 - expected).abs().max().into_scalar() < 1e-14);
        // Forwards on another backend are not tapped; the tape is gone afterwards.
        let (_, none) = tap::<B, _>(|| l1.valid().forward(x.clone().inner()));
        assert_eq!(
            none.len(),
            1,
            "the plain-backend tap sees the plain forward"
        );
        let (_, other) = tap::<B, _>(|| l1.forward(x.clone()));
        assert!(
            other.is_empty(),
            "an autodiff forward is not on the tapped backend"
        );
        TAPES.with(|t| assert!(t.borrow().is_empty()));
    }

    #[test]
    fn conv_taps_record_geometry_and_survive_panics() {
        let dev = Default::default();
        let conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding([1, 1])
            .with_stride([2, 2])
            .init::<AB>(&dev)
            .unwrap();
        let x = Tensor::<AB, 4>::ones([1, 2, 5, 5], &dev);
        let (y, taps) = tap::<AB, _>(|| conv.forward(x.clone()));
        let Tap::Conv2d {
            probe,
            kernel,
            stride,
            ..
        } = &taps[0]
        else {
            panic!()
        };
        assert_eq!(probe.dims(), y.dims());
        assert_eq!((*kernel, *stride), ([3, 3], [2, 2]));
        let caught = std::panic::catch_unwind(|| tap::<B, _>(|| panic!("inside a tap")));
        assert!(caught.is_err());
        TAPES.with(|t| assert!(t.borrow().is_empty()));
    }
}
