//! Renamings from module paths to the `state_dict` names of the PyTorch code the papers used,
//! for [`save_safetensors`](crate::save_safetensors) / [`load_safetensors`](crate::load_safetensors).
//!
//! | model | reference code | example |
//! |---|---|---|
//! | [`Vgg`](crate::Vgg) | SWA / Gadam `models/vgg.py` (`features` = conv, (BN), ReLU, …, `M`; `classifier` = Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear) | `convs.2.weight` → `features.5.weight` (no BN) |
//! | [`PreResNet`](crate::PreResNet) | bearpaw/pytorch-classification `preresnet.py` | `stages.1.0.downsample.weight` → `layer2.0.downsample.0.weight` |
//! | [`WideResNet`](crate::WideResNet) | SWA `wide_resnet.py` (after meliketoy) | `stages.2.3.shortcut.bias` → `layer3.3.shortcut.0.bias`, `bn.*` → `bn1.*`, `fc.*` → `linear.*` |
//!
//! Models not listed (logistic regression, MLP, All-CNN-C) use their module paths.

use crate::models::{VggConfig, VggLayer};

fn split_index(rest: &str) -> Option<(usize, &str)> {
    let (i, tail) = rest.split_once('.')?;
    Some((i.parse().ok()?, tail))
}

/// The VGG renaming for a given configuration (indices depend on the layer list and on batch
/// norm).
pub fn vgg(config: &VggConfig) -> impl Fn(&str) -> String + use<> {
    // Position of each conv (and its BN) inside `features`.
    let mut conv_at = Vec::new();
    let mut k = 0;
    for layer in &config.layers {
        match layer {
            VggLayer::Conv(_) => {
                conv_at.push(k);
                k += if config.batch_norm { 3 } else { 2 };
            }
            VggLayer::Pool => k += 1,
        }
    }
    move |name: &str| {
        if let Some((i, tail)) = name.strip_prefix("convs.").and_then(split_index) {
            return format!("features.{}.{tail}", conv_at[i]);
        }
        if let Some((i, tail)) = name.strip_prefix("norms.").and_then(split_index) {
            return format!("features.{}.{tail}", conv_at[i] + 1);
        }
        if let Some((i, tail)) = name.strip_prefix("classifier.").and_then(split_index) {
            return format!("classifier.{}.{tail}", [1, 4, 6][i]);
        }
        name.to_string()
    }
}

fn stages(name: &str) -> Option<String> {
    let (s, tail) = name.strip_prefix("stages.").and_then(split_index)?;
    Some(format!("layer{}.{tail}", s + 1))
}

/// The bearpaw PreResNet renaming.
pub fn preresnet(name: &str) -> String {
    let name = stages(name).unwrap_or_else(|| name.to_string());
    name.replace(".downsample.", ".downsample.0.")
}

/// The SWA WideResNet renaming.
pub fn wide_resnet(name: &str) -> String {
    if let Some(tail) = name.strip_prefix("bn.") {
        return format!("bn1.{tail}");
    }
    if let Some(tail) = name.strip_prefix("fc.") {
        return format!("linear.{tail}");
    }
    stages(name)
        .unwrap_or_else(|| name.to_string())
        .replace(".shortcut.", ".shortcut.0.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_names() {
        let plain = vgg(&VggConfig::vgg16(100, false));
        assert_eq!(plain("convs.0.weight"), "features.0.weight");
        assert_eq!(plain("convs.2.weight"), "features.5.weight");
        assert_eq!(plain("convs.12.bias"), "features.28.bias");
        assert_eq!(plain("classifier.2.weight"), "classifier.6.weight");
        let bn = vgg(&VggConfig::vgg16(100, true));
        assert_eq!(bn("convs.1.weight"), "features.3.weight");
        assert_eq!(bn("norms.1.running_var"), "features.4.running_var");
        assert_eq!(bn("convs.12.weight"), "features.40.weight");
        assert_eq!(
            preresnet("stages.1.0.downsample.weight"),
            "layer2.0.downsample.0.weight"
        );
        assert_eq!(preresnet("stages.0.11.bn3.weight"), "layer1.11.bn3.weight");
        assert_eq!(preresnet("conv1.weight"), "conv1.weight");
        assert_eq!(
            wide_resnet("stages.2.3.shortcut.bias"),
            "layer3.3.shortcut.0.bias"
        );
        assert_eq!(wide_resnet("bn.running_mean"), "bn1.running_mean");
        assert_eq!(wide_resnet("fc.weight"), "linear.weight");
    }
}
