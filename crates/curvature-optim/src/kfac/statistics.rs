//! KFAC's factor statistics: the batch factors `A` and `G` of every tapped layer — from the
//! probes' gradients of the loss (empirical Fisher), sampled labels (true Fisher) or the exact
//! expectation over the outputs — and their moving averages.

use super::*;

impl<AB: AutodiffBackend, M: AutodiffModule<AB>> Kfac<AB, M> {
    /// Batch factors from taps whose probes received `∂(mean loss)/∂s`; `scale = N` turns
    /// them into per-example gradients.
    pub(super) fn stats_from(
        &self,
        taps: &[Tap<AB>],
        grads: &AB::Gradients,
        scale: f64,
    ) -> OResult<LayerStats<AB>> {
        taps.iter()
            .filter(|t| supported(t))
            .map(|t| {
                let pg = probe_grad(t, grads, scale)?;
                Ok((t.clone(), batch_factors(&inner_tap(t), pg)?))
            })
            .collect()
    }

    /// Batch factors from sampled or exact output gradients (extra passes).
    pub(super) fn fisher_stats(
        &self,
        model: &M,
        loss: Loss,
        forward: &mut impl FnMut(&M) -> Tensor<AB, 2>,
    ) -> OResult<LayerStats<AB>> {
        let (outputs, taps) = tap::<AB, _>(|| forward(model));
        let z = outputs.clone().inner();
        let [n, k] = z.dims();
        let device = z.device();
        // Cotangents u with E[u uᵀ] = H_ℓ(z) (rows: examples).
        let cotangents: Vec<Tensor<Inner<AB>, 2>> = match self.config.fisher {
            FisherEstimate::Sampled => {
                // Each peer draws for its own examples; peer 0 (and one process) the base stream.
                let base = derive_seed(self.config.seed, self.steps as u64);
                let mut rng = StdRng::seed_from_u64(match self.peers.as_ref().map(|g| g.rank()) {
                    None | Some(0) => base,
                    Some(rank) => derive_seed(base, rank as u64),
                });
                let u: Vec<f64> = match loss {
                    Loss::CrossEntropy => {
                        let p = to_host(&activation::softmax(z.clone(), 1));
                        let mut u = p.clone();
                        for row in 0..n {
                            let r: f64 = rand::Rng::random(&mut rng);
                            let mut acc = 0.0;
                            let mut class = k - 1;
                            for c in 0..k {
                                acc += p[row * k + c];
                                if r < acc {
                                    class = c;
                                    break;
                                }
                            }
                            u[row * k + class] -= 1.0; // ∂ℓ/∂z = p − e_y
                        }
                        u
                    }
                    Loss::MeanSquaredError => {
                        // y ~ N(z, (K/2) I): ∂ℓ/∂z = (2/K)(z − y) = −√(2/K) ε.
                        let s = (2.0 / k as f64).sqrt();
                        (0..n * k)
                            .map(|_| {
                                let e: f64 = StandardNormal.sample(&mut rng);
                                -s * e
                            })
                            .collect()
                    }
                };
                vec![Tensor::from_data(TensorData::new(u, [n, k]), &device)]
            }
            // (The empirical Fisher reuses the gradient pass and never comes here.)
            FisherEstimate::Exact | FisherEstimate::Empirical => {
                // H_ℓ = Σ_c u_c u_cᵀ: CE u_c = √p_c (e_c − p); MSE u_c = √(2/K) e_c.
                let p = match loss {
                    Loss::CrossEntropy => Some(to_host(&activation::softmax(z.clone(), 1))),
                    Loss::MeanSquaredError => None,
                };
                (0..k)
                    .map(|c| {
                        let mut u = vec![0.0; n * k];
                        for row in 0..n {
                            match &p {
                                Some(p) => {
                                    let pr = &p[row * k..(row + 1) * k];
                                    let root = pr[c].sqrt();
                                    for j in 0..k {
                                        let e = if j == c { 1.0 } else { 0.0 };
                                        u[row * k + j] = root * (e - pr[j]);
                                    }
                                }
                                None => u[row * k + c] = (2.0 / k as f64).sqrt(),
                            }
                        }
                        Tensor::from_data(TensorData::new(u, [n, k]), &device)
                    })
                    .collect()
            }
        };
        let mut total: Option<LayerStats<AB>> = None;
        let mut pass = Some((outputs, taps));
        for u in cotangents {
            let (outputs, taps) = match pass.take() {
                Some(p) => p,
                None => tap::<AB, _>(|| forward(model)),
            };
            let grads = (outputs * Tensor::from_inner(u)).sum().backward();
            let stats = self.stats_from(&taps, &grads, 1.0)?;
            total = Some(match total {
                None => stats,
                Some(prev) => prev
                    .into_iter()
                    .zip(stats)
                    .map(|((t, (a, g)), (_, (_, g2)))| (t, (a, g + g2)))
                    .collect(),
            });
        }
        Ok(total.unwrap_or_default())
    }

    pub(super) fn update_factors(&mut self, stats: LayerStats<AB>) -> OResult<()> {
        // A layer applied several times in one forward: average its statistics.
        let mut merged: Vec<(Tap<AB>, FactorPair<Inner<AB>>, usize)> = Vec::new();
        for (t, (a, g)) in stats {
            match merged.iter_mut().find(|(m, _, _)| m.weight() == t.weight()) {
                Some((_, (ma, mg), count)) => {
                    *ma = ma.clone() + a;
                    *mg = mg.clone() + g;
                    *count += 1;
                }
                None => merged.push((t, (a, g), 1)),
            }
        }
        // Check everything before changing anything: a failed step leaves the state as it was.
        for (_, (a, g), _) in &merged {
            if has_non_finite(a) || has_non_finite(g) {
                return Err(OptimError::InvalidInput(
                    "KFAC: a Kronecker factor is NaN or infinite (the step was not applied)".into(),
                ));
            }
        }
        let xi = self.config.stat_decay;
        for (t, (a, g), count) in merged {
            let (a, g) = if count > 1 {
                let c = 1.0 / count as f64;
                (a.mul_scalar(c), g.mul_scalar(c))
            } else {
                (a, g)
            };
            let shape = match &t {
                Tap::Dense { probe, input, .. } => vec![probe.dims()[1], input.dims()[1]],
                Tap::Conv2d {
                    probe,
                    input,
                    geometry: c,
                    ..
                } => vec![
                    probe.dims()[1],
                    input.dims()[1] / c.groups,
                    c.kernel[0],
                    c.kernel[1],
                ],
            };
            match self.layers.iter_mut().find(|l| l.weight == t.weight()) {
                Some(layer) => {
                    if layer.weight_shape != shape {
                        return Err(OptimError::InvalidInput(format!(
                            "KFAC: layer weight shape changed from {:?} to {shape:?}",
                            layer.weight_shape
                        )));
                    }
                    layer.a = layer.a.clone().mul_scalar(xi) + a.mul_scalar(1.0 - xi);
                    layer.g = layer.g.clone().mul_scalar(xi) + g.mul_scalar(1.0 - xi);
                }
                None => self.layers.push(Layer {
                    weight: t.weight(),
                    bias: t.bias(),
                    weight_shape: shape,
                    a,
                    g,
                    eigen: None,
                    inverses: None,
                }),
            }
        }
        Ok(())
    }
}
