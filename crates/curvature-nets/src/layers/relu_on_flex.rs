//! ReLU on Flex as one operation: one pass forward in place of the input, one backward in place
//! of the output gradient (each after a copy only if another tensor shares it), each split
//! between rayon's threads.
//!
//! `y = max(x, 0)`, `∂x = ∂y · 1[y > 0]` — burn-flex's own `relu` and `relu_backward`
//! element for element (`f32::max`, so a NaN input gives 0 there as here), so the results are
//! bit for bit burn's, at every thread count (each element is computed by one task).
//!
//! Why: burn-flex runs both passes on the calling thread. perf put them at a quarter of the
//! calling thread in PreResNet-20's gradient at two threads, where the other core sat idle
//! (docs/benchmarks.md, "ReLU as one operation on Flex").
//!
//! Used where its backward runs on bare Flex: on `Flex` itself and on `Autodiff<Flex>` (a
//! training step's gradient). Under two `Autodiff` levels (an exact Hessian-vector product) the
//! activation keeps burn's operations, which nest.

use std::any::TypeId;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use curvature_core::same_type::same_type as same;
use rayon::prelude::*;

use super::flex_f32::owned_row_major;

/// Elements per task on rayon's pool.
const PER_TASK: usize = 1 << 15;

/// `f` applied to every element of `t` (with the element of `other` at the same place, a
/// row-major buffer of `t`'s shape): in place, after a copy only if another tensor shares
/// `t`'s storage.
fn map_in_place(
    t: FlexTensor,
    other: Option<&[f32]>,
    what: &str,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> FlexTensor {
    let mut t = owned_row_major(t, what);
    let values = t.storage_mut::<f32>();
    match other {
        None => values.par_chunks_mut(PER_TASK).for_each(|chunk| {
            for v in chunk {
                *v = f(*v, 0.0);
            }
        }),
        Some(other) => {
            assert_eq!(values.len(), other.len(), "{what}: operands of one shape");
            values
                .par_chunks_mut(PER_TASK)
                .zip(other.par_chunks(PER_TASK))
                .for_each(|(chunk, other)| {
                    for (v, &o) in chunk.iter_mut().zip(other) {
                        *v = f(*v, o);
                    }
                });
        }
    }
    t
}

/// `max(x, 0)`, in place of `x` (unless its storage is shared).
fn forward(x: FlexTensor) -> FlexTensor {
    map_in_place(x, None, "ReLU", |x, _| x.max(0.0))
}

/// `g · 1[y > 0]`, in place of `g` (unless its storage is shared).
fn backward(y: &FlexTensor, g: FlexTensor) -> FlexTensor {
    let y = y.storage::<f32>();
    map_in_place(
        g,
        Some(y),
        "ReLU's backward",
        |g, y| {
            if y > 0.0 { g } else { 0.0 }
        },
    )
}

/// The operation on `Autodiff<Flex>`: its state is the output `y`.
#[derive(Debug)]
struct ReluOp;

impl Backward<Flex, 1> for ReluOp {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            grads.register::<Flex>(node.id, backward(&ops.state, g));
        }
    }
}

/// `max(x, 0)` by the operation of this module when `B` is `Flex` or `Autodiff<Flex>` and `x`
/// is `f32`; `x` back otherwise.
pub(crate) fn relu_on_flex<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        let x: Tensor<Flex, D> = same(x);
        let y = forward(x.into_primitive().tensor());
        return Ok(same(Tensor::<Flex, D>::from_primitive(
            TensorPrimitive::Float(y),
        )));
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<Flex>>() {
        type A = Autodiff<Flex>;
        let x: Tensor<A, D> = same(x);
        let x = x.into_primitive().tensor();
        let node = x.node.clone();
        let y = forward(x.primitive);
        let y = match ReluOp
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Ok(same(Tensor::<A, D>::from_primitive(
            TensorPrimitive::Float(y),
        )));
    }
    Err(x)
}
