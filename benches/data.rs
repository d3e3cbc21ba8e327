//! Throughput of the CIFAR augmentation + batching pipeline (random crop with 4-pixel zero
//! padding, horizontal flip, per-channel normalisation, batch tensor of 128) on the CPU.
//!
//! ```text
//! cargo bench --bench data
//! ```
use std::hint::black_box;
use std::sync::Arc;

use burn::backend::NdArray;
use criterion::{Criterion, Throughput};
use curvature::data::{Augmentation, AugmentedStream, ClassificationData};

type B = NdArray<f32>;

fn main() {
    let n = 5_000;
    let inputs: Vec<f32> = (0..n * 3072)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let data = Arc::new(
        ClassificationData::new(
            inputs,
            vec![3, 32, 32],
            (0..n).map(|i| i % 100).collect(),
            100,
        )
        .unwrap(),
    );
    let stream = AugmentedStream::<B>::new(
        data,
        Augmentation::cifar(),
        1_500_000,
        128,
        0,
        &Default::default(),
    )
    .unwrap()
    .with_normalization(vec![0.507, 0.487, 0.441], vec![0.267, 0.256, 0.276])
    .unwrap();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("augment_and_batch");
    group.throughput(Throughput::Elements(128));
    let mut start = 0;
    group.bench_function("cifar_batch_128", |b| {
        b.iter(|| {
            start = (start + 128) % 1_400_000;
            black_box(stream.batch(start).unwrap())
        })
    });
    group.finish();
    c.final_summary();
}
