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
    let (outliers, bulk_edge) = match config.outliers {
        OutlierRule::Gap { factor } => gap_outliers(run, &degenerate, factor),
        OutlierRule::MarchenkoPastur { tracy_widom } => mp_outliers(run, tracy_widom, dim, vectors),
    };
    RunStats {
        degenerate_mass,
        degenerate_location,
        negative_mass,
        negative_count: negatives.len(),
        outliers,
        bulk_edge,
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
        edge,
        threshold: edge + (tracy_widom * tw).max(3.0 * edge_se),
    })
}

/// Outliers above a Marchenko–Pastur bulk fitted to the non-negative Ritz values, iterated
/// until the set of bulk nodes is stable. Where the bulk is far from Marchenko–Pastur — a
/// Hessian at zero loss, whose few outliers' `λ²/P` dominate the second moment — the fitted
/// edge rises above them and the rule under-counts; the gap rule is the alternative there.
fn mp_outliers(run: &QuadratureRun, tracy_widom: f64, dim: usize, vectors: usize) -> (usize, f64) {
    let mut limit = f64::INFINITY;
    let mut fit = None;
    for _ in 0..100 {
        let Some(f) = mp_fit(run, limit, tracy_widom, dim, vectors) else {
            break;
        };
        fit = Some(f);
        let bulk = |l: f64| run.nodes.iter().filter(|t| **t >= 0.0 && **t <= l).count();
        if bulk(f.threshold) == bulk(limit) {
            break;
        }
        limit = f.threshold;
    }
    match fit {
        Some(f) => (
            run.nodes.iter().filter(|t| **t > f.threshold).count(),
            f.edge,
        ),
        // No non-negative mass: no bulk to stand out from.
        None => (0, run.nodes.last().copied().unwrap_or(0.0)),
    }
}
