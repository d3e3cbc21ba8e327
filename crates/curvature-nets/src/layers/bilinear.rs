//! Bilinear layer maps as custom autodiff operations that nest, so exact Hessian-vector
//! products (`Autodiff<Autodiff<_>>`) differentiate them a second time.
//!
//! A layer whose output is bilinear in its input and its weight, `y = f(x, W)` — a dense
//! layer's `x Wᵀ`, a convolution's `W ⋆ x` — has two derivatives that are again bilinear. With
//! `⟨·,·⟩` the sum of elementwise products, they are the adjoints
//!
//! * `f_x(g, W)`, the gradient of `⟨g, f(x, W)⟩` in `x`: `⟨f_x(g, W), x⟩ = ⟨g, f(x, W)⟩`;
//! * `f_W(x, g)`, the gradient of `⟨g, f(x, W)⟩` in `W`: `⟨f_W(x, g), W⟩ = ⟨g, f(x, W)⟩`.
//!
//! The three maps close under differentiation. For an upstream gradient `G`:
//!
//! | map          | ∂ first argument  | ∂ second argument |
//! |--------------|-------------------|-------------------|
//! | `f(x, W)`    | `f_x(G, W)`       | `f_W(x, G)`       |
//! | `f_x(g, W)`  | `f(G, W)`         | `f_W(G, g)`       |
//! | `f_W(x, g)`  | `f_x(g, G)`       | `f(x, G)`         |
//!
//! (each row follows from the two adjoint identities: `⟨G, f_x(g, W)⟩ = ⟨g, f(G, W)⟩` is
//! linear in `g` and in `W`, and likewise for `f_W`). So a family of such maps ([`Bilinear`],
//! implemented by a layer's geometry type for a backend without autodiff) becomes, on
//! `Autodiff<B>`, one custom operation per map whose backward calls the family's maps on `B` —
//! recorded on `B`'s own graph when `B` is itself an `Autodiff` backend. That is how a layer
//! keeps a fast kernel of its own (our `gemm` calls for a dense layer on Flex, im2col products
//! for a convolution) in the gradient *and* in the Hessian-vector product.
//!
//! [`apply_any_level`] reaches a family from code generic over any `Backend`: it compares the
//! backend's [`TypeId`] with `K`, `Autodiff<K>` and `Autodiff<Autodiff<K>>` and moves the
//! tensors across with a checked `Any` downcast (no `unsafe`), so layers and models keep a
//! plain `B: Backend` bound.

use std::any::TypeId;
use std::fmt::Debug;
use std::marker::PhantomData;

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};
use curvature_core::same_type::same_type as same;

/// A bilinear map `f(x, W)` and its two adjoints (see the module docs) on backend `B`'s
/// primitives. Implemented by the map's geometry (stride, padding, …: whatever `f` needs
/// besides its operands' shapes) for backends without autodiff; every `Autodiff` level above
/// such a backend then has it too, as recorded operations.
pub(crate) trait Bilinear<B: Backend>: Copy + Debug + Send + Sync + 'static {
    /// `f(x, W)`.
    fn apply(self, x: FloatTensor<B>, w: FloatTensor<B>) -> FloatTensor<B>;
    /// `f_x(g, W)`, the gradient of `⟨g, f(x, W)⟩` in an `x` of shape `x_shape`.
    fn adjoint_x(self, g: FloatTensor<B>, w: FloatTensor<B>, x_shape: &Shape) -> FloatTensor<B>;
    /// `f_W(x, g)`, the gradient of `⟨g, f(x, W)⟩` in a `W` of shape `w_shape`.
    fn adjoint_w(self, x: FloatTensor<B>, g: FloatTensor<B>, w_shape: &Shape) -> FloatTensor<B>;
}

/// Which of a family's three maps an operation computes (a row of the module docs' table).
#[derive(Debug, Clone, Copy)]
enum Role {
    /// `f(x, W)`.
    Map,
    /// `f_x(g, W)`.
    AdjointX,
    /// `f_W(x, g)`.
    AdjointW,
}

/// One map of family `F` as an autodiff operation: the state is both operands and the
/// geometry; the backward is the two partial maps of the table in the module docs.
#[derive(Debug)]
struct BilinearOp<F> {
    role: Role,
    family: PhantomData<F>,
}

impl<B: Backend, F: Bilinear<B>> Backward<B, 2> for BilinearOp<F> {
    type State = (NodeId, NodeId, F);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (state_a, state_b, f) = ops.state;
        let a = checkpointer.retrieve_node_output::<FloatTensor<B>>(state_a);
        let b = checkpointer.retrieve_node_output::<FloatTensor<B>>(state_b);
        if let Some(node) = node_a {
            let (g, b) = (grad.clone(), b.clone());
            let da = match self.role {
                Role::Map => f.adjoint_x(g, b, &a.shape()),
                Role::AdjointX => f.apply(g, b),
                Role::AdjointW => f.adjoint_x(b, g, &a.shape()),
            };
            grads.register::<B>(node.id, da);
        }
        if let Some(node) = node_b {
            let b_shape = b.shape();
            let db = match self.role {
                Role::Map => f.adjoint_w(a, grad, &b_shape),
                Role::AdjointX => f.adjoint_w(grad, a, &b_shape),
                Role::AdjointW => f.apply(a, grad),
            };
            grads.register::<B>(node.id, db);
        }
    }
}

/// Record `forward(a, b)`, map `role` of family `f`, with parents `a` and `b`.
fn record<B: Backend, C: CheckpointStrategy, F: Bilinear<B>>(
    role: Role,
    f: F,
    a: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let op = BilinearOp::<F> {
        role,
        family: PhantomData,
    };
    match op
        .prepare::<C>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state_a = prep.checkpoint(&a);
            let state_b = prep.checkpoint(&b);
            prep.finish((state_a, state_b, f), forward(a.primitive, b.primitive))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(a.primitive, b.primitive)),
    }
}

impl<B: Backend, C: CheckpointStrategy, F: Bilinear<B>> Bilinear<Autodiff<B, C>> for F {
    fn apply(
        self,
        x: FloatTensor<Autodiff<B, C>>,
        w: FloatTensor<Autodiff<B, C>>,
    ) -> FloatTensor<Autodiff<B, C>> {
        record::<B, C, F>(Role::Map, self, x, w, |x, w| {
            <F as Bilinear<B>>::apply(self, x, w)
        })
    }

    fn adjoint_x(
        self,
        g: FloatTensor<Autodiff<B, C>>,
        w: FloatTensor<Autodiff<B, C>>,
        x_shape: &Shape,
    ) -> FloatTensor<Autodiff<B, C>> {
        record::<B, C, F>(Role::AdjointX, self, g, w, |g, w| {
            <F as Bilinear<B>>::adjoint_x(self, g, w, x_shape)
        })
    }

    fn adjoint_w(
        self,
        x: FloatTensor<Autodiff<B, C>>,
        g: FloatTensor<Autodiff<B, C>>,
        w_shape: &Shape,
    ) -> FloatTensor<Autodiff<B, C>> {
        record::<B, C, F>(Role::AdjointW, self, x, g, |x, g| {
            <F as Bilinear<B>>::adjoint_w(self, x, g, w_shape)
        })
    }
}

/// The operands of a map, handed back when the backend is not the one asked for.
pub(crate) type Operands<B, const DX: usize, const DW: usize> = (Tensor<B, DX>, Tensor<B, DW>);

/// `f(x, W)` through family `f` on `K` when `B` is `K`; the operands back otherwise.
fn apply_as<B, K, F, const DX: usize, const DW: usize, const DY: usize>(
    f: F,
    (x, w): Operands<B, DX, DW>,
) -> Result<Tensor<B, DY>, Operands<B, DX, DW>>
where
    B: Backend,
    K: Backend,
    F: Bilinear<K>,
{
    if TypeId::of::<B>() != TypeId::of::<K>() {
        return Err((x, w));
    }
    let (x, w): (Tensor<K, DX>, Tensor<K, DW>) = (same(x), same(w));
    let y = f.apply(x.into_primitive().tensor(), w.into_primitive().tensor());
    Ok(same(Tensor::<K, DY>::from_primitive(
        TensorPrimitive::Float(y),
    )))
}

/// `f(x, W)` through family `f` when `B` is `K` under zero, one (a gradient) or two (a
/// Hessian-vector product) `Autodiff` levels; the operands back otherwise.
pub(crate) fn apply_any_level<B, K, F, const DX: usize, const DW: usize, const DY: usize>(
    f: F,
    operands: Operands<B, DX, DW>,
) -> Result<Tensor<B, DY>, Operands<B, DX, DW>>
where
    B: Backend,
    K: Backend,
    F: Bilinear<K>,
{
    apply_as::<B, K, F, DX, DW, DY>(f, operands)
        .or_else(|operands| apply_as::<B, Autodiff<K>, F, DX, DW, DY>(f, operands))
        .or_else(|operands| apply_as::<B, Autodiff<Autodiff<K>>, F, DX, DW, DY>(f, operands))
}

/// Whether `B` is `K` under zero, one or two `Autodiff` levels (the backends
/// [`apply_any_level`] serves for `K`).
pub(crate) fn is_any_level_of<B: Backend, K: Backend>() -> bool {
    [
        TypeId::of::<K>(),
        TypeId::of::<Autodiff<K>>(),
        TypeId::of::<Autodiff<Autodiff<K>>>(),
    ]
    .contains(&TypeId::of::<B>())
}
