//! Statistics of one quadrature run: the degenerate and negative masses, and the outliers by
//! the gap rule or beyond the fitted Marchenko–Pastur bulk edge.

use super::*;

pub(super) struct RunStats {
    pub(super) degenerate_mass: f64,
    pub(super) degenerate_location: f64,
    pub(super) negative_mass: f64,
    pub(super) negative_count: usize,
    pub(super) outliers: usize,
    pub(super) bulk_edge: f64,
    /// Whether the count means anything.
    pub(super) check: OutlierCheck,
}

pub(super) fn run_stats(
    run: &QuadratureRun,
    config: &SpectrumConfig,
    dim: usize,
    vectors: usize,
) -> RunStats {
    let m = run.nodes.len();
    // The near-zero cluster: the one or two Ritz values of smallest magnitude, and every node
    // within zero_tolerance of the spectral radius.
    let mut by_mag: Vec<usize> = (0..m).collect();
    by_mag.sort_by(|&a, &b| run.nodes[a].abs().total_cmp(&run.nodes[b].abs()));
    let take = match config.definiteness {
        Definiteness::Indefinite => 2,
        Definiteness::Psd => 1,
    }
    .min(m);
    let radius = run.nodes.iter().fold(0.0f64, |r, t| r.max(t.abs()));
    let band = config.zero_tolerance * radius;
    let degenerate: Vec<usize> = by_mag
        .iter()
        .enumerate()
        .take_while(|&(rank, &k)| rank < take || run.nodes[k].abs() <= band)
        .map(|(_, &k)| k)
        .collect();
    let degenerate_mass: f64 = degenerate.iter().map(|&k| run.weights[k]).sum();
    let degenerate_location = if degenerate_mass > 0.0 {
        degenerate
            .iter()
            .map(|&k| run.weights[k] * run.nodes[k])
            .sum::<f64>()
            / degenerate_mass
    } else {
        0.0
    };
    let negatives: Vec<usize> = (0..m)
        .filter(|k| run.nodes[*k] < 0.0 && !degenerate.contains(k))
        .collect();
    let negative_mass = negatives.iter().map(|&k| run.weights[k]).sum::<f64>() + 0.0; // + 0.0: an empty sum is −0.0
    let (outliers, bulk_edge, misfit) = match config.outliers {
        OutlierRule::Gap { factor } => {
            let (outliers, edge) = gap_outliers(run, &degenerate, factor);
            (outliers, edge, None)
        }
        OutlierRule::MarchenkoPastur { tracy_widom } => mp_outliers(run, tracy_widom, dim, vectors),
    };
    RunStats {
        degenerate_mass,
        degenerate_location,
        negative_mass,
        negative_count: negatives.len(),
        outliers,
        bulk_edge,
        check: OutlierCheck::new(run, outliers, dim, misfit),
    }
}

/// Bulk and outliers by gap clustering (nodes are ascending).
fn gap_outliers(run: &QuadratureRun, degenerate: &[usize], factor: f64) -> (usize, f64) {
    let m = run.nodes.len();
    let gaps: Vec<f64> = run.nodes.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return (0, run.nodes.first().copied().unwrap_or(0.0));
    }
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2].max(f64::MIN_POSITIVE);
    // Clusters as index ranges.
    let mut clusters = vec![(0usize, 0usize)];
    for (k, g) in gaps.iter().enumerate() {
        if *g > factor * median {
            clusters.push((k + 1, k + 1));
        } else {
            clusters.last_mut().expect("non-empty").1 = k + 1;
        }
    }
    let weight = |&(a, b): &(usize, usize)| -> f64 {
        (a..=b)
            .filter(|k| !degenerate.contains(k))
            .map(|k| run.weights[k])
            .sum()
    };
    let bulk = clusters
        .iter()
        .max_by(|x, y| weight(x).total_cmp(&weight(y)))
        .copied()
        .expect("non-empty");
    (m - 1 - bulk.1, run.nodes[bulk.1])
}

/// A Marchenko–Pastur law `MP(σ², q)` fitted to a bulk: its upper edge and the threshold
/// above which a Ritz value is an outlier.
#[derive(Debug, Clone, Copy)]
struct MpFit {
    /// `σ²`, the bulk's mean.
    sigma2: f64,
    /// `q = P/n`, the aspect ratio.
    q: f64,
    edge: f64,
    threshold: f64,
}

/// Fit `MP(σ², q)` to the first two moments `μ₁ = σ²`, `μ₂ = σ⁴(1 + q)` of the nodes in
/// `[0, limit]` (weights renormalised), with the Tracy–Widom width and the edge's own
/// sampling error (moments of a `dim`-dimensional operator from `vectors` quadratures).
fn mp_fit(
    run: &QuadratureRun,
    limit: f64,
    tracy_widom: f64,
    dim: usize,
    vectors: usize,
) -> Option<MpFit> {
    let (mut w, mut m1, mut m2, mut m4) = (0.0, 0.0, 0.0, 0.0);
    for (t, r) in run.nodes.iter().zip(&run.weights) {
        if *t >= 0.0 && *t <= limit {
            w += r;
            m1 += r * t;
            m2 += r * t * t;
            m4 += r * t.powi(4);
        }
    }
    if w <= 0.0 || m1 <= 0.0 {
        return None;
    }
    let (m1, m2, m4) = (m1 / w, m2 / w, m4 / w);
    let edge_of = |m1: f64, m2: f64| -> f64 {
        let q = (m2 / (m1 * m1) - 1.0).max(0.0);
        m1 * (1.0 + q.sqrt()).powi(2)
    };
    let edge = edge_of(m1, m2);
    let q = (m2 / (m1 * m1) - 1.0).max(1e-12);
    let p = dim as f64;
    let n = p / q;
    let tw = m1 * (n.sqrt() + p.sqrt()) * (1.0 / n.sqrt() + 1.0 / p.sqrt()).cbrt() / n;
    // The edge's sampling error: the moments' uniform-sphere errors (over the bulk's share of
    // the dimension), carried through λ₊(μ₁, μ₂) by finite differences.
    let eff = ((w * p).round() as usize).max(1);
    let (se1, se2) = (
        sphere_stderr(m1, m2, eff, vectors),
        sphere_stderr(m2, m4, eff, vectors),
    );
    let h1 = edge_of(m1 + se1, m2) - edge;
    let h2 = edge_of(m1, m2 + se2) - edge;
    let edge_se = (h1 * h1 + h2 * h2).sqrt();
    Some(MpFit {
        sigma2: m1,
        q,
        edge,
        threshold: edge + (tracy_widom * tw).max(3.0 * edge_se),
    })
}

/// Outliers above a Marchenko–Pastur bulk fitted to the non-negative Ritz values, iterated
/// until the set of bulk nodes is stable, and how well the fit describes that bulk
/// ([`bulk_misfit`]). Where the bulk is far from Marchenko–Pastur — a Hessian at zero loss,
/// whose few outliers' `λ²/P` dominate the second moment, or a decaying tail with no edge —
/// the count means nothing, and the misfit says so.
fn mp_outliers(
    run: &QuadratureRun,
    tracy_widom: f64,
    dim: usize,
    vectors: usize,
) -> (usize, f64, Option<(f64, f64)>) {
    let bulk = |l: f64| run.nodes.iter().filter(|t| **t >= 0.0 && **t <= l).count();
    let mut limit = f64::INFINITY;
    let mut fit = None;
    for _ in 0..100 {
        let Some(f) = mp_fit(run, limit, tracy_widom, dim, vectors) else {
            break;
        };
        fit = Some((f, limit));
        if bulk(f.threshold) == bulk(limit) {
            break;
        }
        limit = f.threshold;
    }
    match fit {
        Some((f, limit)) => (
            run.nodes.iter().filter(|t| **t > f.threshold).count(),
            f.edge,
            Some(bulk_misfit(run, limit, &f, dim)),
        ),
        // No non-negative mass: no bulk to stand out from.
        None => (0, run.nodes.last().copied().unwrap_or(0.0), None),
    }
}

/// Whether an outlier count means anything: two checks of the quadrature against what the
/// count claims (for each SLQ run; the summary reports medians over the vectors).
///
/// 1. **The outliers are single eigenvalues.** A Ritz value that has converged to an isolated
///    eigenvalue `λ_i` carries the weight `(u_iᵀv)²`, which for `v` uniform on the sphere is
///    `χ²₁/P` (to `O(1/P)`). So `P·Σρ` over `n` genuine outliers is `χ²_n`, mean `n`. Ritz
///    values above the edge that stand for a continuum — a decaying tail that Lanczos has not
///    resolved — carry the mass of many eigenvalues each: `P·Σρ` far above `n`. The check
///    compares `eigenvalues_above = P·Σρ` with the 0.999 quantile of `χ²_n` (Wilson–Hilferty:
///    `n(1 − 2/(9n) + 3.09·sqrt(2/(9n)))³`).
/// 2. **The bulk is Marchenko–Pastur** (that rule only): the fitted law stays within the
///    Chebyshev–Markov–Stieltjes brackets of the bulk's quadrature ([`bulk_misfit`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OutlierCheck {
    /// `P·Σρ` over the Ritz values counted as outliers: how many eigenvalues lie there.
    pub eigenvalues_above: f64,
    /// The 0.999 quantile of `eigenvalues_above` if each outlier were one eigenvalue.
    pub eigenvalues_allowed: f64,
    /// Marchenko–Pastur rule: the largest distance by which the fitted distribution function
    /// leaves the Chebyshev–Markov–Stieltjes brackets of the bulk's Gauss quadrature.
    pub bulk_misfit: Option<f64>,
    /// What sampling error and the moment fit allow it: `0.05 + 3·sqrt(1/(2(P_bulk + 2)))`.
    pub bulk_misfit_allowance: Option<f64>,
}

impl OutlierCheck {
    fn new(run: &QuadratureRun, outliers: usize, dim: usize, misfit: Option<(f64, f64)>) -> Self {
        let m = run.weights.len();
        let n = outliers as f64;
        Self {
            // + 0.0: an empty sum is −0.0.
            eigenvalues_above: dim as f64 * run.weights[m - outliers.min(m)..].iter().sum::<f64>()
                + 0.0,
            eigenvalues_allowed: if outliers == 0 {
                0.0
            } else {
                let c = 2.0 / (9.0 * n);
                n * (1.0 - c + 3.09 * c.sqrt()).powi(3)
            },
            bulk_misfit: misfit.map(|m| m.0),
            bulk_misfit_allowance: misfit.map(|m| m.1),
        }
    }

    /// Medians over the runs, field by field.
    pub(super) fn median(checks: &[Self]) -> Self {
        let field =
            |f: &dyn Fn(&Self) -> Option<f64>| median(checks.iter().filter_map(f).collect());
        Self {
            eigenvalues_above: field(&|c| Some(c.eigenvalues_above)).unwrap_or(0.0),
            eigenvalues_allowed: field(&|c| Some(c.eigenvalues_allowed)).unwrap_or(0.0),
            bulk_misfit: field(&|c| c.bulk_misfit),
            bulk_misfit_allowance: field(&|c| c.bulk_misfit_allowance),
        }
    }

    /// Whether the outliers are single eigenvalues and the bulk fit (if any) holds.
    pub fn is_reliable(&self) -> bool {
        self.problems().is_empty()
    }

    /// What fails, in words (empty when the count is reliable).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.eigenvalues_above > self.eigenvalues_allowed {
            problems.push(format!(
                "the Ritz values above the edge carry the mass of {:.0} eigenvalues, more than single eigenvalues would (≤ {:.1})",
                self.eigenvalues_above, self.eigenvalues_allowed
            ));
        }
        if let (Some(misfit), Some(allowance)) = (self.bulk_misfit, self.bulk_misfit_allowance)
            && misfit > allowance
        {
            problems.push(format!(
                "the bulk is not Marchenko–Pastur (the fitted law misses the SLQ quadrature by {misfit:.3} > {allowance:.3})"
            ));
        }
        problems
    }
}

/// The Chebyshev–Markov–Stieltjes test of a fitted bulk law `F` against the run's Gauss
/// quadrature `(θ_k, ρ_k)` of the bulk (nodes in `[0, limit]`, weights renormalised).
///
/// A Gauss quadrature of a measure `μ` brackets its distribution function at every node
/// (Chebyshev–Markov–Stieltjes; Szegő, *Orthogonal Polynomials*, §3.41):
///
/// ```text
/// Σ_{j<k} ρ_j ≤ μ((−∞, θ_k))   and   μ((−∞, θ_k]) ≤ Σ_{j≤k} ρ_j.
/// ```
///
/// If `F` were the bulk's spectral distribution it would sit in every bracket up to the
/// quadrature's sampling error — a spectral fraction `f` seen through one vector has standard
/// deviation `sqrt(2f(1 − f)/(P + 2)) ≤ sqrt(1/(2(P + 2)))` — and the error of the two fitted
/// moments. The misfit is the largest distance outside a bracket; the allowance is 0.05 plus
/// three of those standard deviations.
/// Returns `(misfit, allowance)`.
fn bulk_misfit(run: &QuadratureRun, limit: f64, fit: &MpFit, dim: usize) -> (f64, f64) {
    let bulk: Vec<(f64, f64)> = run
        .nodes
        .iter()
        .zip(&run.weights)
        .filter(|(t, _)| **t >= 0.0 && **t <= limit)
        .map(|(t, r)| (*t, *r))
        .collect();
    let total: f64 = bulk.iter().map(|(_, r)| r).sum();
    let mut below = 0.0;
    let mut misfit = 0.0f64;
    for (t, r) in &bulk {
        let f = mp_cdf(fit.sigma2, fit.q, *t);
        let above = below + r / total;
        misfit = misfit.max(below - f).max(f - above);
        below = above;
    }
    let p_bulk = total * dim as f64;
    (misfit, 0.05 + 3.0 * (0.5 / (p_bulk + 2.0)).sqrt())
}

/// The distribution function of the Marchenko–Pastur law `MP(σ², q)` (mean `σ²`, aspect ratio
/// `q`): for `q > 1` an atom `1 − 1/q` at 0, and the density
/// `sqrt((λ₊ − x)(x − λ₋)) / (2π σ² q x)` on `[λ₋, λ₊] = [σ²(1 − √q)², σ²(1 + √q)²]`.
///
/// The density is integrated in `x = m − h cos φ` (`m`, `h` the interval's centre and
/// half-width), which removes the square-root edges: `∫ h² sin²φ / (2π σ² q x(φ)) dφ`, by the
/// composite midpoint rule on 512 panels (error ≲ 1e-6).
pub(super) fn mp_cdf(sigma2: f64, q: f64, t: f64) -> f64 {
    let atom = (1.0 - 1.0 / q).max(0.0);
    if t < 0.0 {
        return 0.0;
    }
    let (lo, hi) = (
        sigma2 * (1.0 - q.sqrt()).powi(2),
        sigma2 * (1.0 + q.sqrt()).powi(2),
    );
    if t >= hi {
        return 1.0;
    }
    if t <= lo {
        return atom;
    }
    let (m, h) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
    let end = ((m - t) / h).clamp(-1.0, 1.0).acos();
    const PANELS: usize = 512;
    let step = end / PANELS as f64;
    let integral: f64 = (0..PANELS)
        .map(|k| {
            let phi = (k as f64 + 0.5) * step;
            h * h * phi.sin().powi(2) / (m - h * phi.cos())
        })
        .sum::<f64>()
        * step
        / (2.0 * std::f64::consts::PI * sigma2 * q);
    (atom + integral).min(1.0)
}
