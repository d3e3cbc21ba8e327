//! The per-batch products behind [`Objective`]'s gradient, Hessian-vector and Gauss–Newton
//! products (reverse and reverse-over-reverse passes), and the assembly of their blocks.

use super::*;
use crate::reduce::sum_in_fixed_order;

impl<B: Backend, M: CurvatureModel<B, D>, const D: usize> Objective<B, M, D> {
    /// `(scale · Σ_batch ℓ, ∇ of it)` on `Autodiff<B>`.
    pub(super) fn batch_gradient_scaled(
        &self,
        model: &Train<B, M>,
        batch: &Batch<B, D>,
        scale: f64,
    ) -> Result<(f64, Tensor<B, 1>)> {
        let x = Tensor::<Ad<B>, D>::from_inner(batch.inputs.clone());
        let y = Tensor::<Ad<B>, 2>::from_inner(batch.targets.matrix().clone());
        let z = model.output(x, self.bn_mode);
        check_outputs(&z, batch)?;
        let loss = self.loss.sum(z, y).mul_scalar(scale);
        let value = scalar(loss.clone().inner());
        let grads = loss.backward();
        let g = collect_grads::<Ad<B>, _>(&self.layout, model, &grads);
        let g = require_all(&self.layout, g)?;
        Ok((value, Tensor::cat(g, 0)))
    }

    /// `(scale · Σ_batch ℓ, H v)` by reverse-over-reverse on `Autodiff<Autodiff<B>>`.
    pub(super) fn batch_hvp_scaled(
        &self,
        batch: &Batch<B, D>,
        v: &Tensor<B, 1>,
        scale: f64,
    ) -> Result<(f64, Tensor<B, 1>)> {
        // Outer leaves whose inner values are the (inner) leaves of `self.model`.
        let model2 = <Train2<B, M> as AutodiffModule<Ad2<B>>>::from_inner(self.model.clone());
        let x = Tensor::<Ad2<B>, D>::from_inner(Tensor::from_inner(batch.inputs.clone()));
        let y = Tensor::<Ad2<B>, 2>::from_inner(Tensor::from_inner(batch.targets.matrix().clone()));
        let z = model2.output(x, self.bn_mode);
        check_outputs(&z, batch)?;
        let loss = self.loss.sum(z, y).mul_scalar(scale);
        let value = scalar(loss.clone().inner().inner());
        // Outer backward: ∇L as inner tensors that still carry the inner graph.
        let grads = loss.backward();
        let g = require_all(
            &self.layout,
            collect_grads::<Ad2<B>, _>(&self.layout, &model2, &grads),
        )?;
        let gv = self.block_dot(g, v)?;
        // Inner backward: ∇(vᵀ∇L) = Hv.
        let grads2 = gv.backward();
        let hv = collect_grads::<Ad<B>, _>(&self.layout, &self.model, &grads2);
        Ok((value, self.assemble_second_order(hv)?))
    }

    /// `scale · Σ_batch J_iᵀ H_ℓ J_i v`.
    pub(super) fn batch_ggn_scaled(
        &self,
        batch: &Batch<B, D>,
        v: &Tensor<B, 1>,
        scale: f64,
    ) -> Result<Tensor<B, 1>> {
        let n = batch.len();
        let k = batch.num_outputs();
        // 1. Jv by the double-VJP trick: g(u) = Jᵀu is linear in the dummy u; ∂(vᵀg(u))/∂u = Jv.
        let model2 = <Train2<B, M> as AutodiffModule<Ad2<B>>>::from_inner(self.model.clone());
        let u = Tensor::<Ad<B>, 2>::zeros([n, k], &self.device).require_grad();
        let x2 = Tensor::<Ad2<B>, D>::from_inner(Tensor::from_inner(batch.inputs.clone()));
        let z2 = model2.output(x2, self.bn_mode);
        check_outputs(&z2, batch)?;
        let z0 = z2.clone().inner().inner();
        let s = (z2 * Tensor::<Ad2<B>, 2>::from_inner(u.clone())).sum();
        let grads = s.backward();
        let g = require_all(
            &self.layout,
            collect_grads::<Ad2<B>, _>(&self.layout, &model2, &grads),
        )?;
        let t = self.block_dot(g, v)?;
        let jv = u.grad(&t.backward()).ok_or_else(|| {
            CurvatureError::MissingGradient(
                "network outputs (the outputs do not depend on the parameters)".into(),
            )
        })?;
        // 2. H_ℓ (Jv), analytically, per example.
        let r = self.loss.output_hessian_product(z0, jv).mul_scalar(scale);
        // 3. Jᵀ r by one reverse pass on Autodiff<B>.
        let x1 = Tensor::<Ad<B>, D>::from_inner(batch.inputs.clone());
        let z1 = self.model.output(x1, self.bn_mode);
        let s = (z1 * Tensor::<Ad<B>, 2>::from_inner(r)).sum();
        let grads = s.backward();
        let jtr = require_all(
            &self.layout,
            collect_grads::<Ad<B>, _>(&self.layout, &self.model, &grads),
        )?;
        Ok(Tensor::cat(jtr, 0))
    }

    /// `Σ_blocks ⟨g_b, v_b⟩` on the inner level. Summing per block rather than concatenating
    /// the gradient keeps a P-sized `cat` (and its backward, one P-sized slice per block) out
    /// of the second-order graph — measurably faster.
    pub(super) fn block_dot(
        &self,
        g: Vec<Tensor<Ad<B>, 1>>,
        v: &Tensor<B, 1>,
    ) -> Result<Tensor<Ad<B>, 1>> {
        let vs = self.layout.split(v)?;
        Ok(g.into_iter()
            .zip(vs)
            .map(|(g, v)| sum_in_fixed_order(g * Tensor::<Ad<B>, 1>::from_inner(v)))
            .reduce(|a, b| a + b)
            .expect("a layout has at least one block"))
    }

    /// Blocks of a second-order product: a block without gradient has a zero row in the
    /// Hessian (its gradient does not depend on any parameter); if *no* block has one the
    /// inner graph is missing, which is an error rather than a zero Hessian.
    pub(super) fn assemble_second_order(
        &self,
        blocks: Vec<Option<Tensor<B, 1>>>,
    ) -> Result<Tensor<B, 1>> {
        if blocks.iter().all(Option::is_none) {
            return Err(CurvatureError::MissingGradient(
                "all parameters (second-order graph missing: the gradient carried no inner history)".into(),
            ));
        }
        let parts = blocks
            .into_iter()
            .zip(self.layout.blocks())
            .map(|(b, blk)| b.unwrap_or_else(|| Tensor::zeros([blk.len], &self.device)))
            .collect();
        Ok(Tensor::cat(parts, 0))
    }
}
