//! `curvature_lab::bench`.

use burn::backend::NdArray;
use curvature_lab::Result;
use curvature_lab::bench::*;

#[test]
fn mlp_bench_measures_every_row_with_positive_times() {
    let options = BenchOptions {
        models: vec!["mlp".into()],
        batch: 4,
        repeats: 1,
        warmup: 0,
        lanczos_steps: 2,
        lanczos_opt_rank: 2,
        // optdigits-sized images: KFAC's first step eigendecomposes a 65 × 65 input
        // factor instead of CIFAR's 3073 × 3073 (tens of seconds).
        image: [1, 8, 8],
        ..BenchOptions::default()
    };
    let mut lines = Vec::new();
    let rows = run::<NdArray<f32>>(&Default::default(), &options, &mut |e| {
        if let BenchEvent::Starting(l) = e {
            lines.push(l.to_string())
        }
    })
    .unwrap();
    let ops = operations(&rows);
    for op in [
        "gradient",
        "exact hvp",
        "ggn product",
        "fd hvp",
        "lanczos step",
        "sgd step",
        "adam step",
        "lanczos-opt step (k=2)",
        "kfac inversion step",
    ] {
        assert!(ops.contains(&op), "missing {op} in {ops:?}");
    }
    assert!(rows.iter().all(|r| r.ms > 0.0 && r.ms.is_finite()));
    assert_eq!(rows[0].params, 64 * 512 + 512 + 512 * 512 + 512 + 5130);
    // One progress line per measured operation: 8 curvature and first-order rows, the three
    // KFAC steps (plain, with factor update, with inversion); the two amortised KFAC rows
    // are derived from those, not measured.
    assert_eq!(lines.len(), 11, "{lines:?}");
    assert_eq!(rows.len(), 13, "{ops:?}");
    assert!(rows[0].first_ms.is_none(), "no warm-up, no first call");
    assert!(to_table(&rows).lines().count() == rows.len() + 1);
    let csv = to_csv(&rows);
    assert!(csv.starts_with(&CSV_HEADER.join(",")));
    assert_eq!(csv.lines().count(), rows.len() + 1);
}

#[test]
fn unknown_model_lists_the_valid_ones() {
    let options = BenchOptions {
        models: vec!["mlp".into(), "resnet".into()],
        ..BenchOptions::default()
    };
    let e = run::<NdArray<f32>>(&Default::default(), &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("`resnet`") && e.contains("preresnet-"), "{e}");
}

/// A [`Measure`] that skips the operations whose names contain `skip`, prepares the
/// others (unless `prepare` is off, as a careless measure might), calls each twice and
/// counts the operations measured.
struct Fake {
    skip: Option<&'static str>,
    prepare: bool,
    calls: usize,
}

impl Fake {
    fn skipping(skip: &'static str) -> Self {
        Self {
            skip: Some(skip),
            prepare: true,
            calls: 0,
        }
    }
}

impl Measure for Fake {
    fn measure(&mut self, case: Case<'_>, op: &mut dyn Operation) -> Result<Option<Timing>> {
        if self.skip.is_some_and(|s| case.operation.contains(s)) {
            return Ok(None);
        }
        if self.prepare {
            op.prepare()?;
        }
        op.call()?;
        op.call()?;
        self.calls += 1;
        Ok(Some(Timing {
            ms: 1.0,
            first_ms: None,
        }))
    }
}

/// The rows of a run on NdArray whose measure skips the operations named with `skip`.
fn run_skipping(options: &BenchOptions, skip: &'static str) -> Vec<BenchRow> {
    run_with::<NdArray<f32>>(
        &Default::default(),
        options,
        &mut Fake::skipping(skip),
        &mut |_| {},
    )
    .unwrap()
}

/// The operations of `rows`, in order.
fn operations(rows: &[BenchRow]) -> Vec<&str> {
    rows.iter().map(|r| r.operation.as_str()).collect()
}

#[test]
fn an_operation_not_prepared_prepares_itself_on_its_first_call() {
    let options = BenchOptions {
        models: vec!["logistic".into()],
        image: [1, 8, 8],
        batch: 2,
        lanczos_opt_rank: 1,
        skip_curvature: true,
        ..BenchOptions::default()
    };
    let mut unprepared = Fake {
        skip: None,
        prepare: false,
        calls: 0,
    };
    let rows =
        run_with::<NdArray<f32>>(&Default::default(), &options, &mut unprepared, &mut |_| {})
            .unwrap();
    let ops = operations(&rows);
    assert!(ops.contains(&"kfac inversion step"), "{ops:?}");
}

#[test]
fn a_skipped_operation_leaves_out_its_row_and_the_rows_derived_from_it() {
    let options = BenchOptions {
        models: vec!["logistic".into()],
        image: [1, 8, 8],
        batch: 2,
        lanczos_steps: 2,
        lanczos_opt_rank: 1,
        skip_kfac: true,
        ..BenchOptions::default()
    };
    let mut measure = Fake::skipping("hvp");
    let rows =
        run_with::<NdArray<f32>>(&Default::default(), &options, &mut measure, &mut |_| {}).unwrap();
    assert_eq!(
        operations(&rows),
        [
            "gradient",
            "ggn product",
            "lanczos step",
            "sgd step",
            "adam step",
            "lanczos-opt step (k=1)"
        ]
    );
    assert_eq!(measure.calls, 6);
    // The measure's times are used as given: 2 Lanczos steps in 1 ms.
    assert_eq!(rows[2].ms, 0.5);
    assert_eq!(rows[2].ratio, Some(0.5));

    let optimisers_only = BenchOptions {
        skip_curvature: true,
        ..options.clone()
    };
    let sgd_skipped = run_skipping(&optimisers_only, "sgd");
    assert_eq!(
        operations(&sgd_skipped),
        ["adam step", "lanczos-opt step (k=1)"]
    );
    assert!(
        sgd_skipped.iter().all(|r| r.ratio.is_none()),
        "no SGD baseline"
    );

    // Skipped KFAC cases: no rows, no amortised row derived from them.
    let with_kfac = BenchOptions {
        skip_kfac: false,
        ..optimisers_only
    };
    let kfac_skipped = run_skipping(&with_kfac, "kfac");
    assert_eq!(
        operations(&kfac_skipped),
        ["sgd step", "adam step", "lanczos-opt step (k=1)"]
    );
}

#[test]
fn skipping_everything_is_rejected() {
    let options = BenchOptions {
        skip_curvature: true,
        skip_optimisers: true,
        ..BenchOptions::default()
    };
    let e = run::<NdArray<f32>>(&Default::default(), &options, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("nothing is left"), "{e}");
}

#[test]
fn throughput_keeps_three_significant_digits() {
    assert_eq!(three_digits(109_423.0), "109423");
    assert_eq!(three_digits(476.4), "476");
    assert_eq!(three_digits(12.34), "12.3");
    assert_eq!(three_digits(0.7416), "0.742");
    assert_eq!(three_digits(0.0), "0");
}

#[test]
fn zero_repeats_is_rejected() {
    let options = BenchOptions {
        repeats: 0,
        ..BenchOptions::default()
    };
    let e = run::<NdArray<f32>>(&Default::default(), &options, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("repeats"), "{e}");
}
