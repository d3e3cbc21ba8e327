//! The configuration of a training run: every command-line flag is a key of [`TrainConfig`],
//! which is what `config.json` in the output directory holds.

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result, invalid, require_positive};

/// Models `curvature train` can build (2-D inputs).
pub const MODELS: [&str; 2] = ["logistic", "mlp"];
/// Datasets available offline.
pub const DATASETS: [&str; 2] = ["optdigits", "clusters"];
/// Optimisers.
pub const OPTIMIZERS: [&str; 6] = ["sgd", "adam", "adamw", "adam-d", "kfac", "lanczos-opt"];
/// Learning-rate schedules.
pub const SCHEDULES: [&str; 4] = ["constant", "cosine", "linear-decay", "warm-ramp"];

/// Damping: a number, or `auto` (RMT auto-damping from the Hessian variance, damping paper §7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DampingSetting {
    /// A fixed damping `δ`.
    Fixed(f64),
    /// `"auto"`.
    Auto(AutoTag),
}

/// The literal `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoTag {
    /// `auto`.
    Auto,
}

impl std::str::FromStr for DampingSetting {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(DampingSetting::Auto(AutoTag::Auto));
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(DampingSetting::Fixed(v)),
            _ => Err(invalid("damping", s, "must be a positive number or `auto`")),
        }
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model name (see [`MODELS`]).
    pub model: String,
    /// Hidden widths of the MLP.
    pub hidden: Vec<usize>,
    /// Dataset name (see [`DATASETS`]).
    pub data: String,
    /// Examples held out for validation.
    pub val_size: usize,
    /// Optimiser name (see [`OPTIMIZERS`]).
    pub optimizer: String,
    /// Base learning rate `α₀`.
    pub lr: f64,
    /// Momentum (SGD, KFAC).
    pub momentum: f64,
    /// Weight decay `λ`.
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW style) instead of L2.
    pub decoupled: bool,
    /// Adam's `ε` (also the floor of its auto-damping).
    pub eps: f64,
    /// Damping of KFAC (`δ`) or Adam (`ε`, overriding `eps`): a number or `auto`.
    pub damping: Option<DampingSetting>,
    /// Floor `δ*` of KFAC's auto-damping.
    pub damping_floor: f64,
    /// Steps between RMT re-estimates (100 in the paper).
    pub damping_interval: usize,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size (≥ the training set: full-batch gradient descent).
    pub batch_size: usize,
    /// Seed of initialisation, shuffling and estimators.
    pub seed: u64,
    /// Schedule name (see [`SCHEDULES`]).
    pub schedule: String,
    /// Start from these weights (safetensors, PyTorch names) instead of the seeded
    /// initialisation.
    pub init_weights: Option<std::path::PathBuf>,
    /// Classes of the Gaussian-clusters dataset.
    pub classes: usize,
    /// Lanczos steps `k` of LanczosOPT.
    pub rank: usize,
    /// Perturbation factor `η` of LanczosOPT (1 = plain LanczosOPT).
    pub eta: f64,
    /// Record the Hessian spectrum every this many epochs (0 = never).
    pub spectrum_every: usize,
    /// Lanczos steps of those spectra.
    pub spectrum_steps: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "mlp".into(),
            hidden: vec![100],
            data: "optdigits".into(),
            val_size: 297,
            optimizer: "sgd".into(),
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            decoupled: false,
            eps: 1e-8,
            damping: None,
            damping_floor: 1e-3,
            damping_interval: 100,
            epochs: 10,
            batch_size: 100,
            seed: 0,
            schedule: "constant".into(),
            init_weights: None,
            classes: 10,
            rank: 20,
            eta: 1.0,
            spectrum_every: 0,
            spectrum_steps: 30,
        }
    }
}

fn check_name(kind: &'static str, name: &str, valid: &[&'static str]) -> Result<()> {
    if valid.contains(&name) {
        Ok(())
    } else {
        Err(LabError::UnknownName {
            kind,
            name: name.to_string(),
            valid: valid.to_vec(),
        })
    }
}

impl TrainConfig {
    /// Check every key.
    ///
    /// # Errors
    /// Unknown names (listing the valid ones) and out-of-range numbers.
    pub fn validate(&self) -> Result<()> {
        check_name("model", &self.model, &MODELS)?;
        check_name("dataset", &self.data, &DATASETS)?;
        check_name("optimizer", &self.optimizer, &OPTIMIZERS)?;
        check_name("schedule", &self.schedule, &SCHEDULES)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", self.lr, "must be positive"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(invalid("momentum", self.momentum, "must lie in [0, 1)"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid("weight_decay", self.weight_decay, "must be ≥ 0"));
        }
        for (field, v) in [("eps", self.eps), ("damping_floor", self.damping_floor)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(field, v, "must be positive"));
            }
        }
        if let Some(DampingSetting::Fixed(d)) = self.damping
            && !(d.is_finite() && d > 0.0)
        {
            return Err(invalid("damping", d, "must be positive"));
        }
        if self.damping.is_some()
            && !matches!(
                self.optimizer.as_str(),
                "kfac" | "adam" | "adamw" | "adam-d" | "lanczos-opt"
            )
        {
            return Err(invalid(
                "damping",
                &self.optimizer,
                "only KFAC, LanczosOPT and the Adam family have a damping (Adam: its ε)",
            ));
        }
        require_positive(&[
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("damping_interval", self.damping_interval),
            ("val_size", self.val_size),
            ("rank", self.rank),
            ("spectrum_steps", self.spectrum_steps),
        ])?;
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(invalid("eta", self.eta, "must be positive"));
        }
        if self.classes < 2 {
            return Err(invalid("classes", self.classes, "needs at least 2 classes"));
        }
        if let Some(p) = &self.init_weights
            && !p.exists()
        {
            return Err(crate::error::io(p, "--init-weights: file not found"));
        }
        if self.model == "mlp" && (self.hidden.is_empty() || self.hidden.contains(&0)) {
            return Err(invalid(
                "hidden",
                format!("{:?}", self.hidden),
                "needs positive widths",
            ));
        }
        Ok(())
    }

    /// Read a configuration file: TOML (`.toml`) or JSON (anything else); keys as in this
    /// struct, missing keys take the defaults, unknown keys are an error.
    ///
    /// # Errors
    /// Unreadable or malformed files, unknown keys.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::error::io(path, e))?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            toml::from_str(&text).map_err(|e| crate::error::io(path, e))
        } else {
            serde_json::from_str(&text).map_err(|e| crate::error::io(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_the_valid_ones_and_numbers_are_checked() {
        let mut c = TrainConfig {
            model: "resnet9000".into(),
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("unknown model `resnet9000`") && e.contains("logistic, mlp"),
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
}
