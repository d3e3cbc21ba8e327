//! The same curvature code on wgpu and on NdArray: exact HVP, GGN product, gradient, Lanczos
//! and two steps of SGD, Adam and KFAC, for an MLP and a batch-normalised CNN, starting from
//! the same weights and data. Built only with `--features wgpu` (the README's test command has
//! it); `curvature-cli`'s tests check the `train` command on both backends:
//!
//! ```text
//! cargo test --profile testing --workspace --features wgpu wgpu_backend
//! ```
//!
//! On a machine without a GPU, wgpu runs on Mesa's software Vulkan driver lavapipe (Debian
//! package `mesa-vulkan-drivers`). Where no adapter at all is found, each test prints why and
//! returns without checking anything (it cannot compare a backend that does not exist) —
//! except in CI (`CI=true`) with lavapipe installed, where a missing adapter is a failure:
//! there the tests must run ([`curvature_core::testing::wgpu_device`]).
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use curvature_core::testing::{
    random_classification_batch, relative_error, to_vec, wgpu_device as gpu,
};
use curvature_core::{
    Batch, BatchNormMode, CurvatureModel, LanczosConfig, LanczosDecomposition, Loss, Network,
    Objective, gaussian_vector, lanczos,
};
use curvature_nets::{Activation, MlpConfig, SimpleCnnConfig, load_safetensors, module_path};
use curvature_optim::{AdamConfig, FixedDamping, KfacConfig, SgdConfig};

type Cpu = NdArray<f32>;
type Gpu = Wgpu<f32, i32>;

/// Both sides are f32 with different summation orders (tiled GPU reductions and burn's conv2d
/// vs sequential CPU loops and im2col + GEMM): measured ≤ 1.4e-6 on lavapipe (2026-11-23);
/// 1e-5 leaves a 7× margin.
const BACKEND_TOL: f64 = 1e-5;
/// Ritz values after 10 Lanczos steps amplify the per-product rounding by the conditioning of
/// the Krylov basis (re-orthogonalised): 1e-3 relative.
const RITZ_TOL: f64 = 1e-3;

/// Copy `from`'s weights (parameters and running statistics) into `to` through a safetensors
/// file, the same path users take between machines.
fn transfer<
    B1: Backend,
    B2: Backend,
    M1: burn::module::Module<B1>,
    M2: burn::module::Module<B2>,
>(
    from: &M1,
    to: M2,
) -> M2 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.safetensors");
    curvature_nets::save_safetensors(from, &file, &module_path).unwrap();
    let (model, unused) = load_safetensors(to, &file, &module_path).unwrap();
    assert!(unused.is_empty(), "unused tensors {unused:?}");
    model
}

/// The three largest Ritz values.
fn top<B: Backend>(d: LanczosDecomposition<B>) -> Vec<f64> {
    d.top_k(3).iter().map(|e| e.value).collect()
}

fn close(gpu: &[f64], cpu: &[f64], tol: f64, what: &str) {
    let err = relative_error(gpu, cpu);
    eprintln!("{what}: relative error {err:.2e}");
    assert!(
        err < tol,
        "{what}: wgpu vs NdArray relative error {err:.2e} ≥ {tol:.0e}"
    );
}

fn host<B: Backend>(t: &Tensor<B, 1>) -> Vec<f64> {
    to_vec(t)
}

/// Gradient, Hv and Gv for two vectors, and the top Ritz values of 10 Lanczos steps.
fn compare_objectives<MC, MG, const D: usize>(
    cpu: &Objective<Cpu, MC, D>,
    gpu: &Objective<Gpu, MG, D>,
    what: &str,
) where
    MC: CurvatureModel<Cpu, D>,
    MG: CurvatureModel<Gpu, D>,
{
    let (dc, dg) = (*cpu.device(), gpu.device().clone());
    assert_eq!(cpu.dim(), gpu.dim());
    close(
        &host(&gpu.params()),
        &host(&cpu.params()),
        1e-7,
        &format!("{what} weights"),
    );
    let (lc, gc) = cpu.gradient().unwrap();
    let (lg, gg) = gpu.gradient().unwrap();
    close(&[lg], &[lc], BACKEND_TOL, &format!("{what} loss"));
    close(
        &host(&gg),
        &host(&gc),
        BACKEND_TOL,
        &format!("{what} gradient"),
    );
    for seed in [1, 2] {
        let vc = gaussian_vector::<Cpu>(cpu.dim(), seed, &dc);
        let vg = gaussian_vector::<Gpu>(gpu.dim(), seed, &dg);
        let hc = host(&cpu.hvp(&vc).unwrap());
        let hg = host(&gpu.hvp(&vg).unwrap());
        close(&hg, &hc, BACKEND_TOL, &format!("{what} Hv (seed {seed})"));
        let ggn_c = host(&cpu.ggn_vp(&vc).unwrap());
        let ggn_g = host(&gpu.ggn_vp(&vg).unwrap());
        close(
            &ggn_g,
            &ggn_c,
            BACKEND_TOL,
            &format!("{what} Gv (seed {seed})"),
        );
    }
    let config = LanczosConfig::new().with_steps(10);
    let rc = top(lanczos(&cpu.hessian(), &config).unwrap());
    let rg = top(lanczos(&gpu.hessian(), &config).unwrap());
    close(&rg, &rc, RITZ_TOL, &format!("{what} top Ritz values"));
}

/// The cross-entropy objective of `model` on one seeded random batch of `shape` (5 classes);
/// the batch is generated on the host, so both backends see the same numbers.
fn objective<BB: Backend, M: CurvatureModel<BB, D>, const D: usize>(
    model: M,
    shape: [usize; D],
    seed: u64,
    device: &BB::Device,
) -> Objective<BB, M, D> {
    let batch = random_classification_batch::<BB, D>(shape, 5, seed, device);
    Objective::new(model, Loss::CrossEntropy, vec![batch]).unwrap()
}

#[test]
fn exact_hvp_ggn_and_lanczos_match_ndarray() {
    let Some(gdev) = gpu() else { return };
    let cdev = Default::default();

    Cpu::seed(&cdev, 3);
    let mlp = MlpConfig::new(20, vec![16], 5)
        .with_activation(Activation::Tanh)
        .init::<Cpu>(&cdev)
        .unwrap();
    let mlp_g = transfer(
        &mlp,
        MlpConfig::new(20, vec![16], 5)
            .with_activation(Activation::Tanh)
            .init::<Gpu>(&gdev)
            .unwrap(),
    );
    let cpu = objective::<Cpu, _, 2>(mlp, [32, 20], 7, &cdev);
    let gpu = objective::<Gpu, _, 2>(mlp_g, [32, 20], 7, &gdev);
    compare_objectives(&cpu, &gpu, "MLP");

    let cnn = SimpleCnnConfig::new(1, [8, 8], vec![4, 6], 5);
    let cnn_c = cnn.init::<Cpu>(&cdev).unwrap();
    let cnn_g = transfer(&cnn_c, cnn.init::<Gpu>(&gdev).unwrap());
    let cpu = objective::<Cpu, _, 4>(cnn_c, [16, 1, 8, 8], 9, &cdev);
    let gpu = objective::<Gpu, _, 4>(cnn_g, [16, 1, 8, 8], 9, &gdev);
    compare_objectives(&cpu, &gpu, "CNN (batch norm, train mode)");
}

/// Flat parameters of an autodiff model, on the host.
fn flat<AB: AutodiffBackend, M, const D: usize>(
    model: &M,
    batch: &Batch<AB::InnerBackend, D>,
) -> Vec<f64>
where
    M: AutodiffModule<AB>,
    M::InnerModule: CurvatureModel<AB::InnerBackend, D>,
{
    host(
        &Objective::new(model.valid(), Loss::CrossEntropy, vec![batch.clone()])
            .unwrap()
            .params(),
    )
}

/// Two steps of SGD with momentum, Adam and KFAC on one backend: each optimiser's total update
/// `θ₂ − θ₀` (the update, not the parameters, so that a wrong step cannot hide in the bulk of
/// unchanged weights).
fn optimiser_steps<B: Backend, M, const D: usize>(model: M, batch: &Batch<B, D>) -> Vec<Vec<f64>>
where
    M: AutodiffModule<Autodiff<B>> + Network<Autodiff<B>, D> + Clone,
    M::InnerModule: CurvatureModel<B, D>,
{
    let x = Tensor::<Autodiff<B>, D>::from_inner(batch.inputs.clone());
    let loss = |m: &M| {
        let out = m.output(x.clone(), BatchNormMode::Train);
        Loss::CrossEntropy
            .sum(out, Tensor::from_inner(batch.targets.matrix().clone()))
            .mul_scalar(1.0 / batch.len() as f64)
    };
    let theta0 = flat(&model, batch);
    let update = |m: &M| -> Vec<f64> {
        flat(m, batch)
            .iter()
            .zip(&theta0)
            .map(|(a, b)| a - b)
            .collect()
    };
    let mut results = Vec::new();

    // Two first-order steps of `opt` at learning rate `lr`.
    fn two_steps<AB: AutodiffBackend, M: AutodiffModule<AB>>(
        mut opt: impl Optimizer<M, AB>,
        lr: f64,
        mut m: M,
        loss: &dyn Fn(&M) -> Tensor<AB, 1>,
    ) -> M {
        for _ in 0..2 {
            let grads = GradientsParams::from_grads(loss(&m).backward(), &m);
            m = opt.step(lr, m, grads);
        }
        m
    }
    let sgd = SgdConfig::new().with_momentum(0.9);
    let m = two_steps(
        sgd.init::<Autodiff<B>, M>().unwrap(),
        0.1,
        model.clone(),
        &loss,
    );
    results.push(update(&m));
    let adam = AdamConfig::new().with_epsilon(1e-3);
    let m = two_steps(
        adam.init::<Autodiff<B>, M>().unwrap(),
        0.01,
        model.clone(),
        &loss,
    );
    results.push(update(&m));

    let mut kfac = KfacConfig::new()
        .with_momentum(0.9)
        .with_cov_interval(1)
        .with_inv_interval(1)
        .init::<Autodiff<B>, M>()
        .unwrap();
    let damping = FixedDamping::new(0.1).unwrap();
    let mut m = model;
    for _ in 0..2 {
        m = kfac
            .step(m, 0.05, &damping, Loss::CrossEntropy, &batch.targets, |m| {
                m.output(x.clone(), BatchNormMode::Train)
            })
            .map_err(|(_, e)| e)
            .unwrap()
            .0;
    }
    results.push(update(&m));
    results
}

#[test]
fn sgd_adam_and_kfac_steps_match_ndarray() {
    let Some(gdev) = gpu() else { return };
    let cdev = Default::default();
    Autodiff::<Cpu>::seed(&cdev, 5);
    let config = SimpleCnnConfig::new(1, [8, 8], vec![4, 6], 5);
    let model_c = config.init::<Autodiff<Cpu>>(&cdev).unwrap();
    let model_g = transfer(&model_c, config.init::<Autodiff<Gpu>>(&gdev).unwrap());
    let bc = random_classification_batch::<Cpu, 4>([16, 1, 8, 8], 5, 11, &cdev);
    let bg = random_classification_batch::<Gpu, 4>([16, 1, 8, 8], 5, 11, &gdev);
    let cpu = optimiser_steps(model_c, &bc);
    let gpu = optimiser_steps(model_g, &bg);
    for ((g, c), name) in gpu.iter().zip(&cpu).zip(["SGD", "Adam", "KFAC"]) {
        close(g, c, BACKEND_TOL, &format!("{name}: update of two steps"));
    }
}
