//! The momentum-SGD update on burn's Flex CPU backend as one pass over each parameter tensor,
//! split between rayon's threads.
//!
//! With momentum `μ`, learning rate `α`, gradient `g`, velocity `z` and weights `w`
//! (PyTorch's `torch.optim.SGD` with dampening 0; Sutskever et al. 2013):
//!
//! ```text
//! z ← μ z + g,     w ← w − α u,     u = z, or u = g + μ z (Nesterov).
//! ```
//!
//! burn's operations run this as four or five single-threaded passes on Flex (a scaling and an
//! addition for the velocity, a scaling and a subtraction for the weights, and for Nesterov
//! one more of each). Here each element is read and written once. The arithmetic is the same
//! `f32` operations in the same order — the scalars rounded to `f32` as burn's `mul_scalar`
//! rounds them, every product and sum rounded separately (no fused multiply-add) — so the
//! result is bit for bit that of the generic code on any backend computing in `f32`, at every
//! thread count, since each element is computed by one thread (test:
//! `tests/it/sgd_on_flex.rs`).

use std::any::TypeId;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use curvature_core::same_type::same_type as same;
use rayon::prelude::*;

/// Elements per task on rayon's pool.
const PER_TASK: usize = 1 << 15;

/// `t`'s elements row-major over its whole buffer, with no other handle of ours on it, so that
/// `storage_mut` writes in place unless another tensor shares the buffer (then it copies).
fn owned<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor().to_contiguous()
}

fn tensor<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    same(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(t)))
}

/// `(w, z)` after one momentum step ([module docs](self)) when `B` is Flex and the three
/// tensors are `f32` of one shape; the operands back, untouched, otherwise.
#[allow(clippy::type_complexity)]
pub(crate) fn momentum_step<B: Backend, const D: usize>(
    [w, g, z]: [Tensor<B, D>; 3],
    lr: f64,
    momentum: f64,
    nesterov: bool,
) -> Result<(Tensor<B, D>, Tensor<B, D>), [Tensor<B, D>; 3]> {
    let applies = TypeId::of::<B>() == TypeId::of::<Flex>()
        && [&w, &g, &z].iter().all(|t| t.dtype() == DType::F32)
        && w.dims() == g.dims()
        && w.dims() == z.dims();
    if !applies {
        return Err([w, g, z]);
    }
    let [mut w, g, mut z] = [w, g, z].map(|t| owned::<D>(same(t)));
    // The scalars as burn's `mul_scalar` hands them to Flex: rounded to `f32`.
    let (lr, mu) = (lr as f32, momentum as f32);
    {
        let g = g.storage::<f32>();
        let (w, z) = (w.storage_mut::<f32>(), z.storage_mut::<f32>());
        w.par_chunks_mut(PER_TASK)
            .zip(z.par_chunks_mut(PER_TASK))
            .zip(g.par_chunks(PER_TASK))
            .for_each(|((w, z), g)| {
                for ((w, z), &g) in w.iter_mut().zip(z.iter_mut()).zip(g) {
                    let velocity = *z * mu + g;
                    let update = if nesterov {
                        g + velocity * mu
                    } else {
                        velocity
                    };
                    *w -= update * lr;
                    *z = velocity;
                }
            });
    }
    Ok((tensor(w), tensor(z)))
}
