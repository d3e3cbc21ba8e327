//! `curvature_lab::config`.

use curvature_lab::config::*;

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
    c.optimizer = "kfac".into();
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
        (t.optimizer.as_str(), t.hidden.clone()),
        ("kfac", vec![32, 16])
    );
    let t: TrainConfig = toml::from_str("damping = 0.01").unwrap();
    assert_eq!(t.damping, Some(DampingSetting::Fixed(0.01)));
    assert!(toml::from_str::<TrainConfig>("lr = \"fast\"").is_err());
}

#[test]
fn averaging_and_augmentation_keys_are_checked() {
    let gadam = TrainConfig {
        optimizer: "gadam".into(),
        epochs: 9,
        schedule: "averaging-decay".into(),
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
        schedule: "averaging-decay".into(),
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs iterate averaging"), "{e}");
    let e = TrainConfig {
        augment: "crop".into(),
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("image examples"), "mlp cannot be augmented: {e}");
    let mut cnn = TrainConfig {
        model: "cnn".into(),
        augment: "flip".into(),
        ..Default::default()
    };
    let e = cnn.validate().unwrap_err().to_string();
    assert!(e.contains("none, crop, crop-flip"), "{e}");
    cnn.augment = "crop-flip".into();
    cnn.validate().unwrap();
    let a = |side| cnn.augmentation(side).map(|a| (a.pad, a.flip));
    assert_eq!((a(32), a(8)), (Some((4, true)), Some((1, true))));
    assert_eq!(augmentation("none", 32), None);
    assert!(
        TrainConfig {
            average_every: 0,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
}
