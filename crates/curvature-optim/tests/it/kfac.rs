//! KFAC against exact references: the Kronecker block equals the exact GGN (= Fisher) block on
//! one-layer linear and convolutional models; the update equals `−α (G ⊗ A + δI)⁻¹ ∇L` solved
//! densely; convergence on softmax regression, an MLP and a batch-normalised CNN; record round
//! trips; errors.

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module};
use burn::record::{BinBytesRecorder, DoublePrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use curvature_core::reduce::relative_error;
use curvature_core::testing::to_vec;
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, DenseReferenceConfig, Loss, Network, Objective,
    ParamLayout, dense_matrix, gaussian_vector,
};
use curvature_data::optdigits;
use curvature_nets::{
    Conv2d, Conv2dConfig, LogisticRegression, LogisticRegressionConfig, Mlp, MlpConfig, SimpleCnn,
    SimpleCnnConfig,
};
use curvature_optim::*;
use nalgebra::{DMatrix, DVector};

type B = NdArray<f64>;
type AB = Autodiff<B>;

/// KFAC's factors and the dense GGN are the same sums in a different order: only rounding.
const EXACT_TOL: f64 = 1e-11;

/// `G ⊗ A` in `ParamLayout` order (weight `(o, i)` row-major, then the bias `o`), from the
/// factors over the combined `[W | b]` columns.
fn kronecker_in_layout(a: &DMatrix<f64>, g: &DMatrix<f64>, bias: bool) -> DMatrix<f64> {
    let (k, da) = (g.nrows(), a.nrows());
    let d_in = if bias { da - 1 } else { da };
    let pos = |o: usize, j: usize| if j < d_in { o * d_in + j } else { k * d_in + o };
    let p = k * da;
    let mut m = DMatrix::zeros(p, p);
    for o in 0..k {
        for o2 in 0..k {
            for j in 0..da {
                for j2 in 0..da {
                    m[(pos(o, j), pos(o2, j2))] = g[(o, o2)] * a[(j, j2)];
                }
            }
        }
    }
    m
}

fn dense<Bk: Backend>(t: &Tensor<Bk, 2>) -> DMatrix<f64> {
    let [r, c] = t.dims();
    DMatrix::from_row_slice(r, c, &t.to_data().iter::<f64>().collect::<Vec<_>>())
}

fn rel(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a - b).norm() / b.norm()
}

fn regression_batch(n: usize, d: usize, k: usize, seed: u64) -> Batch<B, 2> {
    let dev = Default::default();
    let x = to_vec(&gaussian_vector::<B>(n * d, seed, &dev));
    let y = to_vec(&gaussian_vector::<B>(n * k, seed + 1, &dev));
    Batch::regression(
        Tensor::from_data(TensorData::new(x, [n, d]), &dev),
        Tensor::from_data(TensorData::new(y, [n, k]), &dev),
    )
    .unwrap()
}

fn exact_kfac() -> KfacConfig {
    KfacConfig::new()
        .with_fisher(FisherEstimate::Exact)
        .with_stat_decay(0.0)
        .with_cov_interval(1)
        .with_inv_interval(1)
        .with_momentum(0.0)
        .with_kl_clip(None)
}

/// One KFAC step on `batch`; returns the factors it used and the model after the step.
fn one_step<M, const D: usize>(
    cfg: &KfacConfig,
    model: M,
    weight: burn::module::ParamId,
    batch: &Batch<B, D>,
    loss: Loss,
    lr: f64,
    delta: f64,
) -> (DMatrix<f64>, DMatrix<f64>, M)
where
    M: AutodiffModule<AB> + Network<AB, D>,
{
    let mut kfac = cfg.init::<AB, M>().unwrap();
    let x = Tensor::<AB, D>::from_inner(batch.inputs.clone());
    let (model, _) = kfac
        .step(
            model,
            lr,
            &FixedDamping::new(delta).unwrap(),
            loss,
            &batch.targets,
            |m| m.output(x.clone(), BatchNormMode::Train),
        )
        .map_err(|(_, e)| e)
        .unwrap();
    let (a, g) = kfac.factors(weight).unwrap();
    (dense(&a), dense(&g), model)
}

/// The exact-Fisher KFAC factors of one step on `batch` against the dense GGN of the model
/// before the step: `(‖G ⊗ A − GGN‖ / ‖GGN‖, dim A, dim G)`.
fn kronecker_vs_ggn<M, const D: usize>(
    model: M,
    weight: burn::module::ParamId,
    batch: &Batch<B, D>,
    loss: Loss,
) -> (f64, usize, usize)
where
    M: AutodiffModule<AB> + Network<AB, D>,
    M::InnerModule: CurvatureModel<B, D>,
{
    let objective = Objective::new(model.valid(), loss, vec![batch.clone()]).unwrap();
    let ggn = dense_matrix(&objective.ggn(), DenseReferenceConfig::default()).unwrap();
    let (a, g, _) = one_step(&exact_kfac(), model, weight, batch, loss, 1e-3, 1.0);
    let kron = kronecker_in_layout(&a, &g, true);
    (rel(&kron, &ggn), a.nrows(), g.nrows())
}

#[test]
fn kronecker_block_equals_the_exact_ggn_of_a_linear_model() {
    let dev = Default::default();
    // Squared error: the output Hessian (2/K)I is the same for every example, so A ⊗ G is
    // exact for any batch size.
    let model = LogisticRegressionConfig::new(5, 3)
        .init::<AB>(&dev)
        .unwrap();
    let batch = regression_batch(20, 5, 3, 7);
    let id = model.linear.weight.id;
    let (err, ..) = kronecker_vs_ggn(model, id, &batch, Loss::MeanSquaredError);
    assert!(err < EXACT_TOL, "MSE: {err}");

    // Cross-entropy with one example: F = ããᵀ ⊗ (diag p − ppᵀ) exactly.
    let model = LogisticRegressionConfig::new(4, 3)
        .init::<AB>(&dev)
        .unwrap();
    let batch = curvature_core::testing::random_classification_batch::<B, 2>([1, 4], 3, 2, &dev);
    let id = model.linear.weight.id;
    let (err, ..) = kronecker_vs_ggn(model, id, &batch, Loss::CrossEntropy);
    assert!(err < EXACT_TOL, "CE: {err}");
}

/// A layer of the user's own (not a `curvature-nets` layer): `y = x Wᵀ + b` written directly,
/// joined to KFAC by implementing `DenseTap` and ending its forward with `self.tap`.
mod own_layer {
    use super::*;
    use burn::module::{Param, ParamId};
    use curvature_core::tap::DenseTap;

    #[derive(Module, Debug)]
    pub struct MyLinear<B: Backend> {
        pub w: Param<Tensor<B, 2>>,
        pub b: Param<Tensor<B, 1>>,
    }

    impl<B: Backend> DenseTap<B> for MyLinear<B> {
        fn weight_id(&self) -> ParamId {
            self.w.id
        }
        fn bias_id(&self) -> Option<ParamId> {
            Some(self.b.id)
        }
    }

    impl<B: Backend> Network<B, 2> for MyLinear<B> {
        fn output(&self, x: Tensor<B, 2>, _: BatchNormMode) -> Tensor<B, 2> {
            let y = x.clone().matmul(self.w.val().transpose()) + self.b.val().unsqueeze_dim(0);
            self.tap(&x, y)
        }
    }
}

/// KFAC preconditions a user-defined layer: its Kronecker block equals the exact GGN (dense,
/// from exact products — independent of the taps) of a squared-error linear model, as for the
/// bundled layer above.
#[test]
fn a_user_defined_layer_is_preconditioned() {
    let dev = Default::default();
    let init =
        |shape: Vec<usize>, seed| to_vec(&gaussian_vector::<B>(shape.iter().product(), seed, &dev));
    let model = own_layer::MyLinear::<AB> {
        w: burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(init(vec![3, 5], 11), [3, 5]),
            &dev,
        )),
        b: burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(init(vec![3], 12), [3]),
            &dev,
        )),
    };
    let batch = regression_batch(20, 5, 3, 7);
    let id = model.w.id;
    let (err, a, g) = kronecker_vs_ggn(model, id, &batch, Loss::MeanSquaredError);
    assert!(err < EXACT_TOL, "MSE: {err}");
    assert_eq!((a, g), (6, 3), "A over [x; 1], G over the outputs");
}

/// A single convolution, its output flattened to `[N, c_out · h · w]`. With a kernel that covers
/// the whole input there is one output position, so KFC's spatial approximation is exact and
/// the test checks the patch (unfold) ordering.
mod one_conv {
    use super::*;

    #[derive(Module, Debug)]
    pub struct OneConv<B: Backend> {
        pub conv: Conv2d<B>,
    }

    impl<B: Backend> Network<B, 4> for OneConv<B> {
        fn output(&self, x: Tensor<B, 4>, _: BatchNormMode) -> Tensor<B, 2> {
            let y = self.conv.forward(x);
            let [n, c, h, w] = y.dims();
            y.reshape([n, c * h * w])
        }
    }
}
use one_conv::OneConv;

#[test]
fn kfc_block_equals_the_exact_ggn_of_a_one_position_convolution() {
    let dev = Default::default();
    let model = OneConv {
        conv: Conv2dConfig::new([2, 3], [3, 3]).init::<AB>(&dev).unwrap(),
    };
    let n = 6;
    let x = to_vec(&gaussian_vector::<B>(n * 18, 11, &dev));
    let y = to_vec(&gaussian_vector::<B>(n * 3, 12, &dev));
    let batch = Batch::regression(
        Tensor::<B, 4>::from_data(TensorData::new(x, [n, 2, 3, 3]), &dev),
        Tensor::from_data(TensorData::new(y, [n, 3]), &dev),
    )
    .unwrap();
    let id = model.conv.weight.id;
    let (err, dim_a, dim_g) = kronecker_vs_ggn(model, id, &batch, Loss::MeanSquaredError);
    assert_eq!((dim_a, dim_g), (19, 3));
    assert!(err < EXACT_TOL, "conv: {err}");
}

/// KFC with four output positions (`|T| = 4`: a 2×2 kernel over 3×3 inputs), cross-entropy over
/// the `c_out · |T| = 12` logits `z_{(o,t)} = s_{o,t}`, exact Fisher. Against a loop reference
/// written from the definitions (host f64, the convolution and softmax computed by hand):
/// `A = (1/N) Σ_{n,t} ã ãᵀ` with `ã_{n,t} = [patch; 1]`, and
/// `G = (1/(N|T|)) Σ_{n,t} Σ_j g^{(j)}_{n,t} g^{(j)ᵀ}_{n,t} = (1/(N|T|)) Σ_{n,t} [diag p − ppᵀ]_{t,t}`
/// (the `c_out × c_out` block of the output Fisher at position `t`).
#[test]
fn kfc_factors_with_four_output_positions_match_a_loop_reference() {
    let dev = Default::default();
    let (n, cin, cout, side, kern) = (5usize, 2usize, 3usize, 3usize, 2usize);
    let out = side - kern + 1;
    let t_count = out * out;
    let classes = cout * t_count;
    let model = OneConv {
        conv: Conv2dConfig::new([cin, cout], [kern, kern])
            .init::<AB>(&dev)
            .unwrap(),
    };
    let x = to_vec(&gaussian_vector::<B>(n * cin * side * side, 31, &dev));
    let labels: Vec<usize> = (0..n).map(|i| (i * 5) % classes).collect();
    let batch = Batch::classification(
        Tensor::<B, 4>::from_data(TensorData::new(x.clone(), [n, cin, side, side]), &dev),
        &labels,
        classes,
    )
    .unwrap();
    let w: Vec<f64> = to_vec(
        &model
            .conv
            .weight
            .val()
            .inner()
            .reshape([cout * cin * kern * kern]),
    );
    let b: Vec<f64> = to_vec(&model.conv.bias.as_ref().unwrap().val().inner());
    let id = model.conv.weight.id;
    let (a, g, _) = one_step(
        &exact_kfac(),
        model,
        id,
        &batch,
        Loss::CrossEntropy,
        1e-3,
        1.0,
    );
    let da = cin * kern * kern + 1;
    assert_eq!((a.nrows(), g.nrows()), (da, cout));
    let mut a_ref = DMatrix::<f64>::zeros(da, da);
    let mut g_ref = DMatrix::<f64>::zeros(cout, cout);
    for e in 0..n {
        let patch = |i: usize, j: usize| -> Vec<f64> {
            let mut v = Vec::with_capacity(da);
            for c in 0..cin {
                for ki in 0..kern {
                    for kj in 0..kern {
                        v.push(x[((e * cin + c) * side + i + ki) * side + j + kj]);
                    }
                }
            }
            v.push(1.0);
            v
        };
        // Logits z_{(o,t)}, index o·|T| + t (the reshape of [c_out, h, w]).
        let mut z = vec![0.0; classes];
        for o in 0..cout {
            for i in 0..out {
                for j in 0..out {
                    let pa = patch(i, j);
                    z[o * t_count + i * out + j] = (0..da - 1)
                        .map(|q| w[o * (da - 1) + q] * pa[q])
                        .sum::<f64>()
                        + b[o];
                }
            }
        }
        let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
        let ez: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
        let sum: f64 = ez.iter().sum();
        let prob: Vec<f64> = ez.iter().map(|v| v / sum).collect();
        for i in 0..out {
            for j in 0..out {
                let pa = DVector::from_vec(patch(i, j));
                a_ref += &pa * pa.transpose() / n as f64;
                let t = i * out + j;
                for o in 0..cout {
                    for o2 in 0..cout {
                        let (u, v) = (o * t_count + t, o2 * t_count + t);
                        let h = if u == v { prob[u] } else { 0.0 } - prob[u] * prob[v];
                        g_ref[(o, o2)] += h / (n * t_count) as f64;
                    }
                }
            }
        }
    }
    assert!(rel(&a, &a_ref) < EXACT_TOL, "A: {}", rel(&a, &a_ref));
    assert!(rel(&g, &g_ref) < EXACT_TOL, "G: {}", rel(&g, &g_ref));
}

/// The sampled Fisher is unbiased for the exact one: the mean of the sampled `G` factor over
/// 400 seeds approaches the exact-Fisher `G` (softmax regression on 20 examples), within 4 %
/// in Frobenius norm — the Monte-Carlo error of 400 × 20 sampled labels is ≈ 1 %, while a
/// biased estimator such as the empirical Fisher lands far off.
#[test]
fn the_sampled_fisher_factor_averages_to_the_exact_one() {
    let dev = Default::default();
    let batch = curvature_core::testing::random_classification_batch::<B, 2>([20, 4], 3, 8, &dev);
    let model = LogisticRegressionConfig::new(4, 3)
        .init::<AB>(&dev)
        .unwrap();
    let id = model.linear.weight.id;
    // The G factor of one step from the initial model under `cfg`.
    let g_of = |cfg: &KfacConfig| {
        one_step(
            cfg,
            model.clone(),
            id,
            &batch,
            Loss::CrossEntropy,
            1e-3,
            1.0,
        )
        .1
    };
    let g_exact = g_of(&exact_kfac());
    let seeds = 400;
    let mut g_mean = DMatrix::<f64>::zeros(3, 3);
    for seed in 0..seeds {
        let g = g_of(
            &exact_kfac()
                .with_fisher(FisherEstimate::Sampled)
                .with_seed(seed),
        );
        g_mean += g / seeds as f64;
    }
    let err = rel(&g_mean, &g_exact);
    assert!(err < 0.04, "sampled mean vs exact G: {err}");
    let g_emp = g_of(&exact_kfac().with_fisher(FisherEstimate::Empirical));
    assert!(
        rel(&g_emp, &g_exact) > 2.0 * err,
        "the test must tell a biased factor apart"
    );
}

#[test]
fn the_update_is_the_damped_kronecker_solve() {
    let dev = Default::default();
    let batch = regression_batch(30, 4, 2, 21);
    let (lr, delta) = (0.5, 0.3);
    // The Newton–Schulz inverses (matrix products on the device) against the same dense LU
    // solve as the eigendecompositions: two algorithms, one reference.
    for (split, clip, solver) in [
        (DampingSplit::Eigen, None, FactorSolver::HostEigen),
        (DampingSplit::PiSplit, None, FactorSolver::HostEigen),
        (DampingSplit::Eigen, Some(1e-6), FactorSolver::HostEigen),
        (DampingSplit::PiSplit, None, FactorSolver::NewtonSchulz),
        (
            DampingSplit::PiSplit,
            Some(1e-6),
            FactorSolver::NewtonSchulz,
        ),
    ] {
        let model = LogisticRegressionConfig::new(4, 2)
            .init::<AB>(&dev)
            .unwrap();
        let layout = ParamLayout::of(&model).unwrap();
        let w0 = to_vec(&layout.flatten(&model.valid()).unwrap());
        let objective =
            Objective::new(model.valid(), Loss::MeanSquaredError, vec![batch.clone()]).unwrap();
        let grad = DVector::from_vec(to_vec(&objective.gradient().unwrap().1));
        let id = model.linear.weight.id;
        let cfg = exact_kfac()
            .with_damping_split(split)
            .with_kl_clip(clip)
            .with_factor_solver(solver);
        let (a, g, model) = one_step(&cfg, model, id, &batch, Loss::MeanSquaredError, lr, delta);
        let w1 = to_vec(&layout.flatten(&model.valid()).unwrap());
        let p = w0.len();
        let matrix = match split {
            DampingSplit::Eigen => {
                kronecker_in_layout(&a, &g, true) + DMatrix::identity(p, p) * delta
            }
            DampingSplit::PiSplit => {
                let pi = ((a.trace() / a.nrows() as f64) / (g.trace() / g.nrows() as f64)).sqrt();
                let r = delta.sqrt();
                let ad = &a + DMatrix::identity(a.nrows(), a.nrows()) * (pi * r);
                let gd = &g + DMatrix::identity(g.nrows(), g.nrows()) * (r / pi);
                kronecker_in_layout(&ad, &gd, true)
            }
        };
        let direction = matrix.lu().solve(&grad).unwrap();
        // KL clipping: ν = min(1, √(κ / (α² ⟨Δ, ∇L⟩))).
        let nu = clip.map_or(1.0, |kappa| {
            (kappa / (lr * lr * direction.dot(&grad))).sqrt().min(1.0)
        });
        if clip.is_some() {
            assert!(nu < 0.1, "this κ must clip: ν = {nu}");
        }
        let step = direction * (-lr * nu);
        let got = DVector::from_iterator(p, w1.iter().zip(&w0).map(|(a, b)| a - b));
        let err = (&got - &step).norm() / step.norm();
        assert!(
            err < 1e-10,
            "{split:?}/{clip:?}/{solver:?}: relative error {err}"
        );
    }
}

fn optdigits_batch(n: usize) -> Batch<B, 2> {
    let dev = Default::default();
    optdigits()
        .unwrap()
        .take(n)
        .batches::<B, 2>(n, &dev)
        .unwrap()[0]
        .clone()
}

fn train<M: AutodiffModule<AB> + Network<AB, D>, const D: usize>(
    cfg: &KfacConfig,
    model: M,
    batch: &Batch<B, D>,
    lr: f64,
    delta: f64,
    steps: usize,
) -> (Vec<f64>, Kfac<AB, M>, M) {
    let mut kfac = cfg.init::<AB, M>().unwrap();
    let damping = FixedDamping::new(delta).unwrap();
    let (model, losses) = steps_of(&mut kfac, model, batch, lr, &damping, steps);
    (losses, kfac, model)
}

/// `steps` KFAC steps of `model` on `batch` (cross-entropy): the model after them and the
/// losses.
fn steps_of<M: AutodiffModule<AB> + Network<AB, D>, const D: usize>(
    kfac: &mut Kfac<AB, M>,
    mut model: M,
    batch: &Batch<B, D>,
    lr: f64,
    damping: &dyn DampingPolicy,
    steps: usize,
) -> (M, Vec<f64>) {
    let x = Tensor::<AB, D>::from_inner(batch.inputs.clone());
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (m, report) = kfac
            .step(
                model,
                lr,
                damping,
                Loss::CrossEntropy,
                &batch.targets,
                |m| m.output(x.clone(), BatchNormMode::Train),
            )
            .map_err(|(_, e)| e)
            .unwrap();
        losses.push(report.loss);
        model = m;
    }
    (model, losses)
}

/// `kfac`'s state written to bytes (f64) and read into a fresh optimiser of `cfg`.
fn round_trip(cfg: &KfacConfig, kfac: &Kfac<AB, Mlp<AB>>) -> Kfac<AB, Mlp<AB>> {
    let recorder = BinBytesRecorder::<DoublePrecisionSettings>::default();
    let bytes = recorder.record(kfac.to_record(), ()).unwrap();
    cfg.init::<AB, Mlp<AB>>()
        .unwrap()
        .load_record(recorder.load(bytes, &Default::default()).unwrap())
        .unwrap()
}

/// The model's parameters as one flat vector.
fn flat<M: AutodiffModule<AB>>(m: &M) -> Vec<f64> {
    to_vec(&ParamLayout::of(m).unwrap().flatten(&m.valid()).unwrap())
}

#[test]
fn kfac_trains_softmax_regression_an_mlp_and_a_batch_normalised_cnn() {
    let dev = Default::default();
    let batch = optdigits_batch(500);
    let cfg = KfacConfig::new().with_cov_interval(2).with_inv_interval(4);
    let model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    let (l, ..) = train(&cfg, model, &batch, 0.2, 1e-2, 60);
    let (s, e) = (l[0], *l.last().unwrap());
    assert!(e < 0.2 * s, "softmax regression: {s} → {e}");

    for fisher in [FisherEstimate::Sampled, FisherEstimate::Empirical] {
        let model: Mlp<AB> = MlpConfig::new(64, vec![32], 10).init(&dev).unwrap();
        let (l, ..) = train(
            &cfg.clone().with_fisher(fisher),
            model,
            &batch,
            0.1,
            0.1,
            40,
        );
        let (s, e) = (l[0], *l.last().unwrap());
        assert!(e < 0.25 * s, "MLP ({fisher:?}): {s} → {e}");
    }

    // Batch norm's γ, β take plain momentum-SGD steps (no Kronecker factors).
    let n = 200;
    let b = optdigits_batch(n);
    let images = Batch {
        inputs: b.inputs.reshape([n, 1, 8, 8]),
        targets: b.targets,
    };
    let model: SimpleCnn<AB> = SimpleCnnConfig::new(1, [8, 8], vec![6], 10)
        .init(&dev)
        .unwrap();
    let (l, kfac, model) = train(&cfg, model, &images, 0.1, 0.1, 30);
    let (s, e) = (l[0], *l.last().unwrap());
    assert!(e < 0.5 * s, "CNN: {s} → {e}");
    assert!(kfac.factors(model.convs[0].weight.id).is_some());
}

#[test]
fn state_round_trips_and_training_continues_bit_identically() {
    let dev = Default::default();
    let batch = optdigits_batch(100);
    let cfg = KfacConfig::new().with_cov_interval(2).with_inv_interval(3);
    let model: Mlp<AB> = MlpConfig::new(64, vec![16], 10).init(&dev).unwrap();
    let (_, kfac, model) = train(&cfg, model, &batch, 0.1, 1e-2, 4);
    let restored = round_trip(&cfg, &kfac);
    assert_eq!(restored.steps(), 4);
    let damping = FixedDamping::new(1e-2).unwrap();
    // Steps 4..8 include a factor update (6), an inversion (6) and sampled labels.
    let run = |mut k: Kfac<AB, Mlp<AB>>, m: Mlp<AB>| {
        flat(&steps_of(&mut k, m, &batch, 0.1, &damping, 4).0)
    };
    let a = run(kfac, model.clone());
    let b = run(restored, model);
    assert_eq!(a, b, "restored KFAC must continue bit-identically");
}

/// A damping that changes at every step it is read: `δ_k = δ₀ · 1.5^k`.
struct Growing(std::cell::Cell<f64>);

impl DampingPolicy for Growing {
    fn damping(&self) -> f64 {
        let d = self.0.get();
        self.0.set(d * 1.5);
        d
    }
}

/// Newton–Schulz inverses on the device against the host eigendecompositions, both with the
/// π-split: an MLP trained 6 steps by each agrees to rounding (two algorithms for the same
/// damped inverses), also when the damping changes at every step while the factors stay
/// (`T_cov = T_inv = 100`: the eigen path applies each new `δ` to the old eigenbases, the
/// Newton–Schulz path must re-invert, or it would keep the first `δ`); its state round-trips
/// and training continues bit for bit.
#[test]
fn newton_schulz_inverses_agree_with_the_host_eigendecomposition() {
    let dev = Default::default();
    let batch = optdigits_batch(100);
    let model: Mlp<AB> = MlpConfig::new(64, vec![16], 10).init(&dev).unwrap();
    let base = KfacConfig::new().with_damping_split(DampingSplit::PiSplit);
    let run = |cfg: &KfacConfig, damping: &dyn DampingPolicy, steps: usize| {
        let mut kfac = cfg.init::<AB, Mlp<AB>>().unwrap();
        let (m, _) = steps_of(&mut kfac, model.clone(), &batch, 0.1, damping, steps);
        (flat(&m), kfac, m)
    };
    let w0 = flat(&model);
    let moved = |w: &[f64]| w.iter().zip(&w0).map(|(a, b)| a - b).collect::<Vec<_>>();
    let growing = || Growing(std::cell::Cell::new(1e-3));
    let fixed = FixedDamping::new(1e-2).unwrap();
    for (intervals, name) in [((2, 3), "fixed damping"), ((100, 100), "growing damping")] {
        let cfg = base
            .clone()
            .with_cov_interval(intervals.0)
            .with_inv_interval(intervals.1);
        let ns = cfg.clone().with_factor_solver(FactorSolver::NewtonSchulz);
        let (eigen, ns) = if intervals.0 == 100 {
            (run(&cfg, &growing(), 6).0, run(&ns, &growing(), 6).0)
        } else {
            (run(&cfg, &fixed, 6).0, run(&ns, &fixed, 6).0)
        };
        let err = relative_error(&moved(&ns), &moved(&eigen));
        assert!(err < 1e-9, "{name}: the updates differ by {err}");
    }
    // A stale inverse (the first δ kept) must fail the growing-damping comparison above: the
    // updates with δ fixed at its first value differ from the eigen path's by far more.
    let cfg = base.clone().with_cov_interval(100).with_inv_interval(100);
    let (eigen, ..) = run(&cfg, &growing(), 6);
    let (stale, ..) = run(&cfg, &FixedDamping::new(1e-3).unwrap(), 6);
    assert!(relative_error(&moved(&stale), &moved(&eigen)) > 1e-4);

    // Round trip: 4 steps, save, restore, 4 more steps (an inversion at step 6) either way.
    let cfg = base
        .with_cov_interval(2)
        .with_inv_interval(3)
        .with_factor_solver(FactorSolver::NewtonSchulz);
    let (_, kfac, trained) = run(&cfg, &fixed, 4);
    let restored = round_trip(&cfg, &kfac);
    let more =
        |mut k: Kfac<AB, Mlp<AB>>, m: Mlp<AB>| flat(&steps_of(&mut k, m, &batch, 0.1, &fixed, 4).0);
    assert_eq!(
        more(kfac, trained.clone()),
        more(restored, trained),
        "restored KFAC (Newton–Schulz) must continue bit-identically"
    );
}

/// A damping far too small for the factors' conditioning: the Newton–Schulz iteration cannot
/// converge in its step budget and says so, leaving the model untouched.
#[test]
fn newton_schulz_reports_a_damping_too_small_to_invert() {
    let dev = Default::default();
    let batch = optdigits_batch(100);
    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
    let model: Mlp<AB> = MlpConfig::new(64, vec![16], 10).init(&dev).unwrap();
    let w0 = to_vec(
        &ParamLayout::of(&model)
            .unwrap()
            .flatten(&model.valid())
            .unwrap(),
    );
    let mut kfac = KfacConfig::new()
        .with_damping_split(DampingSplit::PiSplit)
        .with_factor_solver(FactorSolver::NewtonSchulz)
        .init::<AB, Mlp<AB>>()
        .unwrap();
    let (model, err) = kfac
        .step(
            model,
            0.1,
            &FixedDamping::new(1e-250).unwrap(),
            Loss::CrossEntropy,
            &batch.targets,
            |m| m.output(x.clone(), BatchNormMode::Train),
        )
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("did not converge") && msg.contains("Newton–Schulz"),
        "{msg}"
    );
    let w = to_vec(
        &ParamLayout::of(&model)
            .unwrap()
            .flatten(&model.valid())
            .unwrap(),
    );
    assert_eq!(w, w0, "model untouched");
}

#[test]
fn observers_see_loss_damping_and_the_curvature_ratio() {
    let dev = Default::default();
    let batch = optdigits_batch(100);
    let model = LogisticRegressionConfig::optdigits()
        .init::<AB>(&dev)
        .unwrap();
    let mut kfac = KfacConfig::new()
        .init::<AB, LogisticRegression<AB>>()
        .unwrap();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    kfac.observe(move |r: &StepReport| sink.borrow_mut().push(r.clone()));
    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
    let (_, report) = kfac
        .step(
            model,
            0.1,
            &FixedDamping::new(0.5).unwrap(),
            Loss::CrossEntropy,
            &batch.targets,
            |m| m.output(x.clone(), BatchNormMode::Train),
        )
        .map_err(|(_, e)| e)
        .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0], report);
    assert_eq!(report.damping, Some(0.5));
    assert!(report.refreshed);
    let (hi, lo) = report.curvature_range.unwrap();
    assert!(hi > lo && lo >= 0.0);
    let r = report.curvature_ratio.unwrap();
    assert!((r - (1.0 + (hi - lo) / 0.5)).abs() < 1e-12);
    assert!(
        (report.loss - 10f64.ln()).abs() < 0.5,
        "loss near ln 10 at init"
    );
}

#[test]
fn bad_configurations_and_inputs_give_specific_errors() {
    type M = LogisticRegression<AB>;
    for (cfg, field) in [
        (KfacConfig::new().with_stat_decay(1.0), "stat_decay"),
        (KfacConfig::new().with_cov_interval(0), "cov_interval"),
        (KfacConfig::new().with_inv_interval(0), "inv_interval"),
        (KfacConfig::new().with_kl_clip(Some(0.0)), "kl_clip"),
        (
            KfacConfig::new().with_factor_solver(FactorSolver::NewtonSchulz),
            "damping_split = pi_split",
        ),
        (KfacConfig::new().with_momentum(-0.5), "momentum"),
        (KfacConfig::new().with_weight_decay(-1.0), "weight"),
    ] {
        let err = cfg.init::<AB, M>().err().unwrap().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    let dev = Default::default();
    let model = LogisticRegressionConfig::new(3, 2)
        .init::<AB>(&dev)
        .unwrap();
    let w0 = model.linear.weight.val().into_data();
    let mut kfac = KfacConfig::new().init::<AB, M>().unwrap();
    let d = FixedDamping::new(1.0).unwrap();
    let nan = Tensor::<AB, 2>::from_data(TensorData::new(vec![f64::NAN; 6], [2, 3]), &dev);
    let batch = curvature_core::testing::random_classification_batch::<B, 2>([2, 3], 2, 1, &dev);
    let (model, err) = kfac
        .step(model, 0.1, &d, Loss::CrossEntropy, &batch.targets, |m| {
            m.output(nan.clone(), BatchNormMode::Train)
        })
        .err()
        .unwrap();
    assert!(matches!(err, OptimError::NonFiniteLoss(_)), "{err}");
    assert_eq!(model.linear.weight.val().into_data(), w0, "model untouched");
    assert_eq!(kfac.steps(), 0);
    let three = curvature_core::testing::random_classification_batch::<B, 2>([3, 3], 2, 1, &dev);
    let x = Tensor::<AB, 2>::from_inner(batch.inputs.clone());
    let (model, err) = kfac
        .step(model, 0.1, &d, Loss::CrossEntropy, &three.targets, |m| {
            m.output(x.clone(), BatchNormMode::Train)
        })
        .err()
        .unwrap();
    assert!(err.to_string().contains("do not match targets"), "{err}");
    let (_, err) = kfac
        .step(model, -1.0, &d, Loss::CrossEntropy, &batch.targets, |m| {
            m.output(x.clone(), BatchNormMode::Train)
        })
        .err()
        .unwrap();
    assert!(err.to_string().contains("lr"), "{err}");
}
