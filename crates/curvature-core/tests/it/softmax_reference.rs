//! The analytic pieces of softmax regression's Hessian that the reference tests build their
//! dense matrices from, independently of the library: the flat parameter layout and the
//! softmax probabilities in plain f64 loops.

use curvature_data::ClassificationData;

/// Softmax regression with `classes` outputs on `features` inputs; parameters flat in the
/// layout `[weight (K×d, row-major), bias (K)]` (burn's `Linear`, as the library flattens it).
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    /// `K`.
    pub classes: usize,
    /// `d`.
    pub features: usize,
}

impl Softmax {
    /// Number of parameters `P = K (d + 1)`.
    pub const fn params(self) -> usize {
        self.classes * (self.features + 1)
    }

    /// Flat index of weight (class, feature); feature `d` is the bias.
    pub fn index(self, class: usize, feature: usize) -> usize {
        if feature < self.features {
            class * self.features + feature
        } else {
            self.classes * self.features + class
        }
    }

    /// The softmax probabilities `p` and the augmented input `x̃ = [x; 1]` of example `i` at
    /// the flat weights `w`.
    pub fn probabilities(
        self,
        w: &[f64],
        data: &ClassificationData,
        i: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let d = self.features;
        let x: Vec<f64> = data.inputs[i * d..(i + 1) * d]
            .iter()
            .map(|&v| v as f64)
            .chain([1.0])
            .collect();
        let z: Vec<f64> = (0..self.classes)
            .map(|c| (0..=d).map(|a| w[self.index(c, a)] * x[a]).sum())
            .collect();
        let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|z| (z - zmax).exp()).collect();
        let s: f64 = e.iter().sum();
        (e.iter().map(|e| e / s).collect(), x)
    }
}
