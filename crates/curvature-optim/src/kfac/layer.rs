//! One preconditioned layer: its Kronecker factors `A` and `G`, their batch estimates from a
//! tap and its probe gradient, and their eigendecompositions or damped inverses.

use super::*;

/// Eigendecompositions of one layer's factors.
#[derive(Clone)]
pub(super) struct Eigen<B: Backend> {
    pub(super) u_a: Tensor<B, 2>,
    pub(super) s_a: Tensor<B, 1>,
    pub(super) u_g: Tensor<B, 2>,
    pub(super) s_g: Tensor<B, 1>,
    /// `π` of the π-split.
    pub(super) pi: f64,
    /// Largest and smallest eigenvalue of `G ⊗ A`.
    pub(super) range: (f64, f64),
}

/// Device inverses of one layer's π-split damped factors ([`FactorSolver::NewtonSchulz`]).
#[derive(Clone)]
pub(super) struct Inverses<B: Backend> {
    /// `(A + π√δ I)⁻¹`.
    pub(super) a: Tensor<B, 2>,
    /// `(G + (√δ/π) I)⁻¹`.
    pub(super) g: Tensor<B, 2>,
    /// `π` of the π-split.
    pub(super) pi: f64,
    /// The damping `δ` they were computed for.
    pub(super) delta: f64,
}

/// One preconditioned layer.
#[derive(Clone)]
pub(super) struct Layer<B: Backend> {
    pub(super) weight: ParamId,
    pub(super) bias: Option<ParamId>,
    /// `[out, in]` or `[out, in/groups, kh, kw]`.
    pub(super) weight_shape: Vec<usize>,
    pub(super) a: Tensor<B, 2>,
    pub(super) g: Tensor<B, 2>,
    pub(super) eigen: Option<Eigen<B>>,
    pub(super) inverses: Option<Inverses<B>>,
}

/// `(U, s, tr m)` with `m = U diag(s) Uᵀ`, `s ≥ 0` (rounding negatives clipped), from one
/// host copy of `m`, symmetrised as `(m + mᵀ)/2` and decomposed in f64.
///
/// The solver is faer's blocked self-adjoint eigendecomposition (Householder
/// tridiagonalisation in panels, then divide and conquer), multithreaded through rayon. It
/// replaced nalgebra's unblocked `SymmetricEigen`: on the 2-core CPU machine a 3073 × 3073
/// factor (the first layer of an MLP on CIFAR) took 31.1 s there and 2.4 s here, a 785 × 785
/// one 0.27 s and 0.06 s (see docs/benchmarks.md, "KFAC inversion").
pub(super) fn sym_eigen<B: Backend>(m: &Tensor<B, 2>) -> OResult<(Tensor<B, 2>, Vec<f64>, f64)> {
    let n = m.dims()[0];
    let host = to_host(m);
    let at = |i: usize, j: usize| host[i * n + j];
    let trace = (0..n).map(|i| at(i, i)).sum();
    let sym = faer::Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (at(i, j) + at(j, i)));
    let e = sym.self_adjoint_eigen(faer::Side::Lower).map_err(|err| {
        OptimError::InvalidInput(format!(
            "KFAC: the eigendecomposition of a {n} × {n} Kronecker factor did not converge \
             ({err:?}); the step was not applied"
        ))
    })?;
    let (values, vectors) = (e.S(), e.U());
    let s: Vec<f64> = (0..n).map(|i| values[i].max(0.0)).collect();
    let u: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).map(move |j| vectors[(i, j)]))
        .collect();
    Ok((
        Tensor::from_data(TensorData::new(u, [n, n]), &m.device()),
        s,
        trace,
    ))
}

/// `π = √((tr A / dim A) / (tr G / dim G))` (Martens & Grosse §6.3), 1 where undefined.
fn pi_split(tr_a: f64, dim_a: usize, tr_g: f64, dim_g: usize) -> f64 {
    let ratio = (tr_a / dim_a as f64) / (tr_g / dim_g as f64);
    if ratio.is_finite() && ratio > 0.0 {
        ratio.sqrt()
    } else {
        1.0
    }
}

/// `tr m`, on the device (burn's `linalg::trace`: the diagonal gathered and summed).
fn trace<B: Backend>(m: &Tensor<B, 2>) -> f64 {
    scalar(burn::tensor::linalg::trace::<B, 2, 1>(m.clone()))
}

impl<B: Backend> Layer<B> {
    /// Whether the layer has what [`precondition`](Self::precondition) needs for damping
    /// `delta` under `solver`.
    pub(super) fn is_solved(&self, solver: FactorSolver, delta: f64) -> bool {
        match solver {
            FactorSolver::HostEigen => self.eigen.is_some(),
            FactorSolver::NewtonSchulz => self.inverses.as_ref().is_some_and(|i| i.delta == delta),
        }
    }

    /// Decompose or invert the current factors, as `solver` says, for damping `delta`.
    pub(super) fn solve(&mut self, solver: FactorSolver, delta: f64) -> OResult<()> {
        match solver {
            FactorSolver::HostEigen => self.decompose(),
            FactorSolver::NewtonSchulz => self.invert(delta),
        }
    }

    /// [`FactorSolver::NewtonSchulz`]: the π-split damped inverses, on the device.
    fn invert(&mut self, delta: f64) -> OResult<()> {
        let (na, ng) = (self.a.dims()[0], self.g.dims()[0]);
        let pi = pi_split(trace(&self.a), na, trace(&self.g), ng);
        let r = delta.sqrt();
        let (a, ..) = newton_schulz::damped_inverse(&self.a, pi * r)?;
        let (g, ..) = newton_schulz::damped_inverse(&self.g, r / pi)?;
        self.eigen = None;
        self.inverses = Some(Inverses { a, g, pi, delta });
        Ok(())
    }

    fn decompose(&mut self) -> OResult<()> {
        let (u_a, s_a, tr_a) = sym_eigen(&self.a)?;
        let (u_g, s_g, tr_g) = sym_eigen(&self.g)?;
        let pi = pi_split(tr_a, s_a.len(), tr_g, s_g.len());
        let max = |s: &[f64]| s.iter().cloned().fold(0.0, f64::max);
        let min = |s: &[f64]| s.iter().cloned().fold(f64::INFINITY, f64::min);
        let range = (max(&s_a) * max(&s_g), min(&s_a) * min(&s_g));
        let dev = self.a.device();
        let vec = |s: Vec<f64>| {
            let n = s.len();
            Tensor::<B, 1>::from_data(TensorData::new(s, [n]), &dev)
        };
        self.inverses = None;
        self.eigen = Some(Eigen {
            u_a,
            s_a: vec(s_a),
            u_g,
            s_g: vec(s_g),
            pi,
            range,
        });
        Ok(())
    }

    /// `[out, in(+1)]`: the weight gradient flattened, bias gradient as last column.
    pub(super) fn gradient(&self, grads: &GradientsParams) -> Option<Tensor<B, 2>> {
        let out = self.weight_shape[0];
        let w = match self.weight_shape.len() {
            2 => grads.get::<B, 2>(self.weight)?,
            _ => grads.get::<B, 4>(self.weight)?.reshape([out as i32, -1]),
        };
        Some(match self.bias {
            Some(b) => Tensor::cat(vec![w, grads.get::<B, 1>(b)?.reshape([out, 1])], 1),
            None => w,
        })
    }

    /// Write the direction `[out, in(+1)]` back as weight and bias "gradients".
    pub(super) fn register(&self, grads: &mut GradientsParams, direction: Tensor<B, 2>) {
        let [out, cols] = direction.dims();
        let d_w = if self.bias.is_some() { cols - 1 } else { cols };
        let w = direction.clone().slice([0..out, 0..d_w]);
        match self.weight_shape.len() {
            2 => grads.register::<B, 2>(self.weight, w),
            _ => {
                let s = &self.weight_shape;
                grads.register::<B, 4>(self.weight, w.reshape([s[0], s[1], s[2], s[3]]))
            }
        }
        if let Some(b) = self.bias {
            grads.register::<B, 1>(b, direction.slice([0..out, d_w..cols]).reshape([out]));
        }
    }

    /// `(G ⊗ A + damping)⁻¹` applied to `v`.
    pub(super) fn precondition(
        &self,
        v: Tensor<B, 2>,
        delta: f64,
        split: DampingSplit,
    ) -> Tensor<B, 2> {
        if let Some(inv) = &self.inverses {
            return inv.g.clone().matmul(v).matmul(inv.a.clone());
        }
        let e = self.eigen.as_ref().expect("decomposed before use");
        let rotated = e.u_g.clone().transpose().matmul(v).matmul(e.u_a.clone());
        let (sg, sa) = (
            e.s_g.clone().unsqueeze_dim(1),
            e.s_a.clone().unsqueeze_dim(0),
        );
        let denom = match split {
            DampingSplit::Eigen => (sg * sa).add_scalar(delta),
            DampingSplit::PiSplit => {
                let r = delta.sqrt();
                sg.add_scalar(r / e.pi) * sa.add_scalar(r * e.pi)
            }
        };
        e.u_g
            .clone()
            .matmul(rotated / denom)
            .matmul(e.u_a.clone().transpose())
    }
}

/// Batch factors `(A_batch, G_batch)` of one tap, given its probe gradient (per example).
pub(super) fn batch_factors<B: Backend>(
    tap: &Tap<B>,
    probe_grad: ProbeGrad<B>,
) -> OResult<(Tensor<B, 2>, Tensor<B, 2>)> {
    let with_ones = |x: Tensor<B, 2>, bias: bool| {
        if bias {
            let ones = Tensor::ones([x.dims()[0], 1], &x.device());
            Tensor::cat(vec![x, ones], 1)
        } else {
            x
        }
    };
    match (tap, probe_grad) {
        (Tap::Dense { input, bias, .. }, ProbeGrad::Dense(g)) => {
            let n = input.dims()[0] as f64;
            let a = with_ones(input.clone(), bias.is_some());
            Ok((
                a.clone().transpose().matmul(a).div_scalar(n),
                g.clone().transpose().matmul(g).div_scalar(n),
            ))
        }
        (
            Tap::Conv2d {
                input,
                bias,
                geometry: c,
                ..
            },
            ProbeGrad::Conv(g),
        ) => {
            let n = input.dims()[0];
            // [N, C·kh·kw, T], as the layer's own lowering (burn's unfold4d is a convolution).
            let patches =
                curvature_nets::im2col(input.clone(), c.kernel, c.stride, c.padding, c.dilation);
            let [_, d, t] = patches.dims();
            let a = with_ones(patches.swap_dims(1, 2).reshape([n * t, d]), bias.is_some());
            let [_, out, h, w] = g.dims();
            if h * w != t {
                return Err(OptimError::InvalidInput(format!(
                    "KFAC: convolution output has {} positions, unfold gives {t}",
                    h * w
                )));
            }
            let g = g.reshape([n, out, t]).swap_dims(1, 2).reshape([n * t, out]);
            Ok((
                a.clone().transpose().matmul(a).div_scalar(n as f64),
                g.clone().transpose().matmul(g).div_scalar((n * t) as f64),
            ))
        }
        _ => unreachable!("probe gradients are taken per tap kind"),
    }
}

/// A probe's gradient on the inner backend.
pub(super) enum ProbeGrad<B: Backend> {
    Dense(Tensor<B, 2>),
    Conv(Tensor<B, 4>),
}

pub(super) fn probe_grad<AB: AutodiffBackend>(
    tap: &Tap<AB>,
    grads: &AB::Gradients,
    scale: f64,
) -> OResult<ProbeGrad<Inner<AB>>> {
    let missing = || {
        OptimError::InvalidInput(
            "KFAC: a tapped layer's output does not reach the loss (its probe has no gradient)"
                .into(),
        )
    };
    Ok(match tap {
        Tap::Dense { probe, .. } => {
            ProbeGrad::Dense(probe.grad(grads).ok_or_else(missing)?.mul_scalar(scale))
        }
        Tap::Conv2d { probe, .. } => {
            ProbeGrad::Conv(probe.grad(grads).ok_or_else(missing)?.mul_scalar(scale))
        }
    })
}

/// Whether KFAC preconditions this tap (grouped convolutions fall back to SGD).
pub(super) fn supported<B: Backend>(tap: &Tap<B>) -> bool {
    match tap {
        Tap::Dense { .. } => true,
        Tap::Conv2d { geometry, .. } => geometry.groups == 1,
    }
}

/// The Kronecker factors `(A, G)` of one layer.
pub type KroneckerFactors<B> = (Tensor<B, 2>, Tensor<B, 2>);
pub(super) type FactorPair<B> = KroneckerFactors<B>;
/// Batch factors of every tapped layer.
pub(super) type LayerStats<AB> = Vec<(Tap<AB>, FactorPair<Inner<AB>>)>;

/// The tap with its tensors on the inner backend (for the factor arithmetic).
pub(super) fn inner_tap<AB: AutodiffBackend>(t: &Tap<AB>) -> Tap<Inner<AB>> {
    match t {
        Tap::Dense {
            weight,
            bias,
            input,
            probe,
        } => Tap::Dense {
            weight: *weight,
            bias: *bias,
            input: input.clone().inner(),
            probe: probe.clone().inner(),
        },
        Tap::Conv2d {
            weight,
            bias,
            input,
            probe,
            geometry,
        } => Tap::Conv2d {
            weight: *weight,
            bias: *bias,
            input: input.clone().inner(),
            probe: probe.clone().inner(),
            geometry: *geometry,
        },
    }
}
