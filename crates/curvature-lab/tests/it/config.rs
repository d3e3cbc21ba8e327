//! `curvature_lab::config`.

use curvature_lab::config::*;
use curvature_lab::names::{AugmentKind, OptimizerKind, ScheduleKind};

#[test]
fn unknown_names_list_the_valid_ones_and_numbers_are_checked() {
    let mut c = TrainConfig {
        model: "resnet9000".into(),
        ..Default::default()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("unknown model `resnet9000`") && e.contains("logistic, mlp, cnn"),
        "{e}"
    );
    c.model = "mlp".into();
    c.lr = -1.0;
    assert!(c.validate().unwrap_err().to_string().contains("lr = -1"));
    c.lr = 0.1;
    c.damping = Some("auto".parse().unwrap());
    assert!(
        c.validate().unwrap_err().to_string().contains("damping"),
        "SGD has no damping"
    );
    c.optimizer = OptimizerKind::Kfac;
    c.validate().unwrap();
    assert!("-3".parse::<DampingSetting>().is_err());
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.contains("\"damping\":\"auto\""), "{json}");
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), c);
    assert!(serde_json::from_str::<TrainConfig>("{\"modle\": \"mlp\"}").is_err());
    let t: TrainConfig =
        toml::from_str("optimizer = \"kfac\"\ndamping = \"auto\"\nhidden = [32, 16]").unwrap();
    assert_eq!(t.damping, Some(DampingSetting::Auto(AutoTag::Auto)));
    assert_eq!(
        (t.optimizer, t.hidden.clone()),
        (OptimizerKind::Kfac, vec![32, 16])
    );
    let t: TrainConfig = toml::from_str("damping = 0.01").unwrap();
    assert_eq!(t.damping, Some(DampingSetting::Fixed(0.01)));
    assert!(toml::from_str::<TrainConfig>("lr = \"fast\"").is_err());
}

#[test]
fn averaging_and_augmentation_keys_are_checked() {
    let gadam = TrainConfig {
        optimizer: OptimizerKind::Gadam,
        epochs: 9,
        schedule: ScheduleKind::AveragingDecay,
        ..Default::default()
    };
    gadam.validate().unwrap();
    assert_eq!(gadam.averaging_start(), Some(4), "⌊9/2⌋");
    assert_eq!(TrainConfig::default().averaging_start(), None);
    let e = TrainConfig {
        epochs: 1,
        ..gadam.clone()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("at least epoch 1"), "T_avg = ⌊1/2⌋ = 0: {e}");
    let late = TrainConfig {
        average_from: Some(10),
        ..Default::default()
    };
    let e = late.validate().unwrap_err().to_string();
    assert!(
        e.contains("average_from = 10") && e.contains("never start"),
        "{e}"
    );
    let e = TrainConfig {
        schedule: ScheduleKind::AveragingDecay,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs iterate averaging"), "{e}");
    let e = TrainConfig {
        augment: AugmentKind::Crop,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("image examples"), "mlp cannot be augmented: {e}");
    // An unknown name in a configuration file is refused with the valid ones listed.
    let e = toml::from_str::<TrainConfig>("model = \"cnn\"\naugment = \"flip\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown variant `flip`") && e.contains("`none`, `crop`, `crop-flip`"),
        "{e}"
    );
    let e = serde_json::from_str::<TrainConfig>("{\"optimizer\": \"adan\"}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`adam-d`") && e.contains("`lanczos-opt`"), "{e}");
    let mut cnn = TrainConfig {
        model: "cnn".into(),
        ..Default::default()
    };
    cnn.augment = AugmentKind::CropFlip;
    cnn.validate().unwrap();
    let a = |side| cnn.augmentation(side).map(|a| (a.pad, a.flip));
    assert_eq!((a(32), a(8)), (Some((4, true)), Some((1, true))));
    assert_eq!(AugmentKind::None.for_side(32), None);
    assert!(
        TrainConfig {
            average_every: 0,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
}

/// A step budget sets the epochs once the training set's size is known (batches counted by
/// hand) and checks iterate averaging against them.
#[test]
fn a_step_budget_sets_the_epochs_from_the_batches_per_epoch() {
    let c = TrainConfig {
        steps: Some(23),
        batch_size: 100,
        ..Default::default()
    };
    c.validate().unwrap();
    // 1 500 examples: 15 batches per epoch, 23 steps end in epoch 2; 1 000: 10 per epoch.
    assert_eq!(c.with_step_budget(1500).unwrap().epochs, 2);
    assert_eq!(c.with_step_budget(1000).unwrap().epochs, 3);
    // 1 001 examples: 11 batches (the last holds one example).
    assert_eq!(c.with_step_budget(1001).unwrap().epochs, 3);
    // Full batch: one step per epoch.
    let full = TrainConfig {
        batch_size: 5000,
        ..c.clone()
    };
    assert_eq!(full.with_step_budget(1500).unwrap().epochs, 23);
    let plain = TrainConfig::default();
    assert_eq!(plain.with_step_budget(7).unwrap(), plain);
    // average_from = 2 passes `validate` (the epochs are not known yet) but not the budget.
    let late = TrainConfig {
        average_from: Some(2),
        ..c.clone()
    };
    late.validate().unwrap();
    let e = late.with_step_budget(1500).unwrap_err().to_string();
    assert!(e.contains("never start"), "{e}");
    late.with_step_budget(1000).unwrap();
    let e = TrainConfig {
        steps: Some(0),
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("steps"), "{e}");
}
