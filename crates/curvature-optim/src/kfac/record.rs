//! KFAC's state as a burn record: the step count, the SGD moments and every layer's factors
//! and eigenbases or damped inverses.

use super::*;

/// Saved state of one KFAC layer.
#[derive(Record, Clone)]
pub struct KfacLayerRecord<B: Backend> {
    /// Weight id (serialised [`ParamId`]).
    pub weight: String,
    /// Bias id.
    pub bias: Option<String>,
    /// Weight shape.
    pub weight_shape: Vec<usize>,
    /// Factor `A`.
    pub a: Tensor<B, 2>,
    /// Factor `G`.
    pub g: Tensor<B, 2>,
    /// The last decomposition ([`FactorSolver::HostEigen`]).
    pub eigen: Option<KfacEigenRecord<B>>,
    /// The last damped inverses ([`FactorSolver::NewtonSchulz`]).
    pub inverses: Option<KfacInverseRecord<B>>,
}

/// Saved damped inverses of one layer's factors ([`FactorSolver::NewtonSchulz`]).
#[derive(Record, Clone)]
pub struct KfacInverseRecord<B: Backend> {
    /// `(A + π√δ I)⁻¹`.
    pub a: Tensor<B, 2>,
    /// `(G + (√δ/π) I)⁻¹`.
    pub g: Tensor<B, 2>,
    /// `π` of the π-split.
    pub pi: f64,
    /// The damping `δ` they were computed for.
    pub delta: f64,
}

/// Saved eigendecomposition of one layer's factors.
#[derive(Record, Clone)]
pub struct KfacEigenRecord<B: Backend> {
    /// Eigenvectors of `A` (columns).
    pub u_a: Tensor<B, 2>,
    /// Eigenvalues of `A`.
    pub s_a: Tensor<B, 1>,
    /// Eigenvectors of `G`.
    pub u_g: Tensor<B, 2>,
    /// Eigenvalues of `G`.
    pub s_g: Tensor<B, 1>,
    /// `π` of the π-split.
    pub pi: f64,
    /// Largest eigenvalue of `G ⊗ A`.
    pub lambda_max: f64,
    /// Smallest eigenvalue of `G ⊗ A`.
    pub lambda_min: f64,
}

/// Saved state of [`Kfac`]: factors, decompositions, momentum buffers and the step count —
/// enough to continue bit-identically.
#[derive(Record)]
pub struct KfacRecord<B: Backend, R: Record<B>> {
    /// Steps taken.
    pub steps: usize,
    /// Momentum buffers of the SGD that applies the directions.
    pub sgd: R,
    /// The preconditioned layers.
    pub layers: Vec<KfacLayerRecord<B>>,
}

impl<AB: AutodiffBackend, M: AutodiffModule<AB>> Kfac<AB, M> {
    /// The state as a burn record.
    pub fn to_record(&self) -> KfacRecord<AB, SgdRecord<AB, M>> {
        KfacRecord {
            steps: self.steps,
            sgd: self.sgd.to_record(),
            layers: self
                .layers
                .iter()
                .map(|l| KfacLayerRecord {
                    weight: l.weight.serialize(),
                    bias: l.bias.map(|b| b.serialize()),
                    weight_shape: l.weight_shape.clone(),
                    a: Tensor::from_inner(l.a.clone()),
                    g: Tensor::from_inner(l.g.clone()),
                    eigen: l.eigen.as_ref().map(|e| KfacEigenRecord {
                        u_a: Tensor::from_inner(e.u_a.clone()),
                        s_a: Tensor::from_inner(e.s_a.clone()),
                        u_g: Tensor::from_inner(e.u_g.clone()),
                        s_g: Tensor::from_inner(e.s_g.clone()),
                        pi: e.pi,
                        lambda_max: e.range.0,
                        lambda_min: e.range.1,
                    }),
                    inverses: l.inverses.as_ref().map(|i| KfacInverseRecord {
                        a: Tensor::from_inner(i.a.clone()),
                        g: Tensor::from_inner(i.g.clone()),
                        pi: i.pi,
                        delta: i.delta,
                    }),
                })
                .collect(),
        }
    }

    /// Restore a state saved by [`to_record`](Self::to_record).
    ///
    /// # Errors
    /// A malformed parameter id.
    pub fn load_record(mut self, record: KfacRecord<AB, SgdRecord<AB, M>>) -> OResult<Self> {
        let id = |s: &str| {
            ParamId::try_deserialize(s).ok_or_else(|| {
                OptimError::InvalidInput(format!("KFAC record: invalid parameter id {s:?}"))
            })
        };
        let mut layers = Vec::with_capacity(record.layers.len());
        for l in record.layers {
            layers.push(Layer {
                weight: id(&l.weight)?,
                bias: l.bias.as_deref().map(id).transpose()?,
                weight_shape: l.weight_shape,
                a: l.a.inner(),
                g: l.g.inner(),
                eigen: l.eigen.map(|e| Eigen {
                    u_a: e.u_a.inner(),
                    s_a: e.s_a.inner(),
                    u_g: e.u_g.inner(),
                    s_g: e.s_g.inner(),
                    pi: e.pi,
                    range: (e.lambda_max, e.lambda_min),
                }),
                inverses: l.inverses.map(|i| Inverses {
                    a: i.a.inner(),
                    g: i.g.inner(),
                    pi: i.pi,
                    delta: i.delta,
                }),
            });
        }
        self.layers = layers;
        self.steps = record.steps;
        self.sgd = self.sgd.load_record(record.sgd);
        Ok(self)
    }
}
