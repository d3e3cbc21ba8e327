//! `αA` and `A + σI`.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::LinearOperator;
use crate::error::Result;

/// `α A`.
#[derive(Debug, Clone)]
pub struct Scaled<A> {
    /// The operator.
    pub op: A,
    /// The scale `α`.
    pub alpha: f64,
}

impl<A> Scaled<A> {
    /// `α A`.
    pub fn new(op: A, alpha: f64) -> Self {
        Self { op, alpha }
    }
}

impl<B: Backend, A: LinearOperator<B>> LinearOperator<B> for Scaled<A> {
    fn dim(&self) -> usize {
        self.op.dim()
    }
    fn device(&self) -> B::Device {
        self.op.device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        Ok(self.op.apply(v)?.mul_scalar(self.alpha))
    }
}

/// `A + σ I` — a damped operator (σ = δ) or a spectral shift.
#[derive(Debug, Clone)]
pub struct Shifted<A> {
    /// The operator.
    pub op: A,
    /// The shift `σ`.
    pub sigma: f64,
}

impl<A> Shifted<A> {
    /// `A + σ I`.
    pub fn new(op: A, sigma: f64) -> Self {
        Self { op, sigma }
    }
}

impl<B: Backend, A: LinearOperator<B>> LinearOperator<B> for Shifted<A> {
    fn dim(&self) -> usize {
        self.op.dim()
    }
    fn device(&self) -> B::Device {
        self.op.device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        Ok(self.op.apply(v)? + v.clone().mul_scalar(self.sigma))
    }
}
