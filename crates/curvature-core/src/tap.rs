//! Layer taps for Kronecker-factored curvature (KFAC, Martens & Grosse 2015; KFAC for
//! convolutions, Grosse & Martens 2016): the inputs and pre-activation gradients of every layer
//! that implements [`DenseTap`] or [`Conv2dTap`], recorded during a forward pass.
//!
//! Inside [`tap`], each such layer's forward on the tapped backend ends with
//! `self.tap(&input, output)`, which records
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
//! The layers of `curvature-nets` (`Dense`, `Conv2d`, and so `curvature::nn::{Linear,
//! Conv2d}`) implement the traits; a layer of your own joins KFAC by implementing one of them
//! (two or three accessors) and ending its forward pass with `self.tap(&input, output)`.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::module::{Module, Param, ParamId};
//! use burn::tensor::{Tensor, backend::Backend};
//! use curvature_core::tap::{self, DenseTap, Tap};
//!
//! /// A user's own bias-free linear layer, `[out, in]` weight as KFAC expects.
//! #[derive(Module, Debug)]
//! struct MyLinear<B: Backend> {
//!     weight: Param<Tensor<B, 2>>,
//! }
//! impl<B: Backend> DenseTap<B> for MyLinear<B> {
//!     fn weight_id(&self) -> ParamId { self.weight.id }
//!     fn bias_id(&self) -> Option<ParamId> { None }
//! }
//! impl<B: Backend> MyLinear<B> {
//!     fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
//!         let y = x.clone().matmul(self.weight.val().transpose());
//!         self.tap(&x, y)
//!     }
//! }
//!
//! type AB = Autodiff<NdArray<f64>>;
//! let dev = Default::default();
//! let layer = MyLinear::<AB> { weight: Param::from_tensor(Tensor::ones([2, 3], &dev)) };
//! let x = Tensor::<AB, 2>::ones([4, 3], &dev);
//! let (y, taps) = tap::tap::<AB, _>(|| layer.forward(x));
//! let grads = y.sum().backward();
//! let Tap::Dense { probe, .. } = &taps[0] else { unreachable!() };
//! // ∂(Σ y)/∂s = 1 for every example and output.
//! let g = probe.grad(&grads).unwrap();
//! assert_eq!(g.into_data().to_vec::<f64>().unwrap(), vec![1.0; 8]);
//! ```

use std::any::Any;
use std::cell::RefCell;

use burn::module::ParamId;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// What one tapped layer application recorded.
#[derive(Debug, Clone)]
pub enum Tap<B: Backend> {
    /// A [`DenseTap`] layer.
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
    /// A [`Conv2dTap`] layer.
    Conv2d {
        /// Id of the weight `[out, in/groups, kh, kw]`.
        weight: ParamId,
        /// Id of the bias `[out]`, if any.
        bias: Option<ParamId>,
        /// The layer input `[N, C, H, W]`, detached.
        input: Tensor<B, 4>,
        /// The zero probe `[N, out, H', W']` added to the output.
        probe: Tensor<B, 4>,
        /// Kernel, stride, padding, dilation and groups.
        geometry: ConvGeometry,
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

/// Run `forward` and return its result with the [`Tap`]s of every [`DenseTap`] and
/// [`Conv2dTap`] forward on backend `B` inside it, in call order (see the [module docs](self)). Taps nest:
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

/// The geometry of a convolution, as [`Conv2dTap`] reports it (KFC unfolds the input into the
/// same patches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Symmetric zero padding.
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups (KFAC preconditions `groups = 1` only; grouped layers take the plain gradient).
    pub groups: usize,
}

/// A fully connected layer `s = W a + b` — weight `[out, in]`, optional bias `[out]`, applied to
/// the rows of an input `[N, in]` — that Kronecker-factored optimisers precondition. Implement
/// the two accessors and end the forward pass with `self.tap(&input, output)`.
pub trait DenseTap<B: Backend> {
    /// Id of the weight `[out, in]`.
    fn weight_id(&self) -> ParamId;
    /// Id of the bias `[out]`, if any.
    fn bias_id(&self) -> Option<ParamId>;
    /// `output` unchanged in value; inside a [`tap`] on `B` the application is recorded and
    /// `output` carries the probe.
    fn tap(&self, input: &Tensor<B, 2>, output: Tensor<B, 2>) -> Tensor<B, 2> {
        record(output, |probe| Tap::Dense {
            weight: self.weight_id(),
            bias: self.bias_id(),
            input: input.clone().detach(),
            probe,
        })
    }
}

/// A 2-D convolution — weight `[out, in/groups, kh, kw]`, optional bias `[out]`, input
/// `[N, C, H, W]` — that Kronecker-factored optimisers precondition (KFC). Implement the three
/// accessors and end the forward pass with `self.tap(&input, output)`.
pub trait Conv2dTap<B: Backend> {
    /// Id of the weight `[out, in/groups, kh, kw]`.
    fn weight_id(&self) -> ParamId;
    /// Id of the bias `[out]`, if any.
    fn bias_id(&self) -> Option<ParamId>;
    /// Kernel, stride, padding, dilation and groups.
    fn geometry(&self) -> ConvGeometry;
    /// `output` unchanged in value; inside a [`tap`] on `B` the application is recorded and
    /// `output` carries the probe.
    fn tap(&self, input: &Tensor<B, 4>, output: Tensor<B, 4>) -> Tensor<B, 4> {
        record(output, |probe| Tap::Conv2d {
            weight: self.weight_id(),
            bias: self.bias_id(),
            input: input.clone().detach(),
            probe,
            geometry: self.geometry(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    #[test]
    fn a_tape_is_popped_even_when_the_forward_panics() {
        let caught = std::panic::catch_unwind(|| {
            tap::<Autodiff<NdArray<f64>>, _>(|| panic!("inside a tap"))
        });
        assert!(caught.is_err());
        TAPES.with(|t| assert!(t.borrow().is_empty()));
    }
}
