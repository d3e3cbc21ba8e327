//! Damped inverses of Kronecker factors on the device: Newton–Schulz iteration, matrix products
//! only ([`FactorSolver::NewtonSchulz`](super::FactorSolver)).
//!
//! For a symmetric `M = F + cI` with `F ⪰ 0` and `c > 0` (a damped factor, eigenvalues in
//! `[c, λ_max]`), the Newton–Schulz (Hotelling–Bodewig) iteration
//!
//! ```text
//! X₀ = α I,  α = 2 / (‖M‖_F + c),     R_k = I − M X_k,     X_{k+1} = X_k (I + R_k)
//! ```
//!
//! converges to `M⁻¹` with `R_{k+1} = R_k²` (Higham, *Functions of Matrices*, SIAM 2008, §7.3;
//! Ben-Israel & Cohen 1966). `X₀` commutes with `M`, so every `R_k` is a polynomial in `M` and
//! its eigenvalues `(1 − αλ)^{2^k}` lie in `(−1, 1)` since `‖M‖_F ≥ λ_max`: the iteration
//! converges from this start for any `F ⪰ 0`, after about `log₂ κ` slow steps
//! (`κ = (‖M‖_F + c)/c`) and a few quadratic ones. Each step is two `n × n` products, which is
//! what a GPU does best; no factor leaves the device.
//!
//! `R_{k+1} = R_k²` gives `‖R_{k+1}‖_F ≤ ‖R_k‖_F²`: once `‖R_k‖_F < ½` every further exact step
//! at least halves it, so a step that does not is rounding's floor (about `κ ε √n` in the
//! float type). The iteration stops there, or at `‖R‖_F ≤` [`TOLERANCE`] `· √n`, and keeps its
//! best iterate; it fails, with the residual in the message, unless that iterate has
//! `‖R‖_F < ½` and `‖R‖_F/√n ≤` [`ACCEPT`] (the root mean square of `R`'s eigenvalues, the
//! relative errors of `X` along `M`'s eigendirections) — a damping far too small for the
//! float type — or after [`MAX_STEPS`] steps.

use super::*;

/// Root-mean-square residual at which the iteration stops (f64 reaches it; f32 stops at its
/// floor first).
pub(super) const TOLERANCE: f64 = 1e-13;
/// The largest root-mean-square residual accepted: `X` is `M⁻¹` to 1 % on average over `M`'s
/// eigendirections (and to better than 50 % in every one, from `‖R‖_F < ½`).
pub(super) const ACCEPT: f64 = 1e-2;
/// Steps at most: enough for `κ` up to about `2⁹⁰`.
pub(super) const MAX_STEPS: usize = 100;

/// `(F + cI)⁻¹` for symmetric `F ⪰ 0` (symmetrised as `(F + Fᵀ)/2`) and `c > 0`, computed on
/// `F`'s device, with the number of steps taken and the final root-mean-square residual.
///
/// # Errors
/// A non-finite factor, or no convergence (see the [module docs](self)).
pub(super) fn damped_inverse<B: Backend>(
    f: &Tensor<B, 2>,
    c: f64,
) -> OResult<(Tensor<B, 2>, usize, f64)> {
    let n = f.dims()[0];
    let dev = f.device();
    let eye = Tensor::<B, 2>::eye(n, &dev);
    let m = (f.clone() + f.clone().transpose()).mul_scalar(0.5) + eye.clone().mul_scalar(c);
    let frobenius = |t: Tensor<B, 2>| scalar(sum_in_fixed_order(t.clone() * t)).sqrt();
    let norm = frobenius(m.clone());
    let root_n = (n as f64).sqrt();
    let fail = |what: String| {
        OptimError::InvalidInput(format!(
            "KFAC: the Newton–Schulz inverse of a {n} × {n} Kronecker factor damped by {c:e} \
             {what}; the step was not applied (use a larger damping, or factor_solver = \
             host_eigen)"
        ))
    };
    if !norm.is_finite() {
        return Err(fail("is not finite".into()));
    }
    let mut x = eye.clone().mul_scalar(2.0 / (norm + c));
    let (mut best, mut best_s) = (x.clone(), f64::INFINITY);
    let mut steps = 0;
    while steps < MAX_STEPS {
        let residual = eye.clone() - m.clone().matmul(x.clone());
        let s = frobenius(residual.clone());
        if !s.is_finite() {
            return Err(fail(format!("diverged at step {steps}")));
        }
        let stalled = best_s < 0.5 && s > 0.5 * best_s;
        if s < best_s {
            (best, best_s) = (x.clone(), s);
        }
        if s <= TOLERANCE * root_n || stalled {
            break;
        }
        x = x.clone() + x.matmul(residual);
        steps += 1;
    }
    let rms = best_s / root_n;
    if !(best_s < 0.5 && rms <= ACCEPT) {
        return Err(fail(format!(
            "did not converge: residual ‖I − MX‖_F = {best_s:.2e} (root mean square {rms:.2e}) \
             after {steps} steps; accepted: below ½ and {ACCEPT:e}"
        )));
    }
    Ok((
        (best.clone() + best.transpose()).mul_scalar(0.5),
        steps,
        rms,
    ))
}
