//! Learning-rate schedules as functions of training progress.
//!
//! Every schedule maps `(α₀, t, T)` — the base learning rate, the epoch (fractional epochs
//! allowed) and the epoch budget — to `α_t`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// A learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// `α_t = α₀`.
    Constant,
    /// Multiply by `gamma` at each milestone epoch.
    Step {
        /// Epochs at which the rate is multiplied by `gamma`.
        milestones: Vec<f64>,
        /// The factor.
        gamma: f64,
    },
    /// Cosine annealing from `α₀` to `min_ratio · α₀` over `T` epochs.
    Cosine {
        /// Final rate as a fraction of `α₀`.
        min_ratio: f64,
    },
    /// Granziol, *Flatness is a False Friend*, eq. 12 (also the damping paper's eq. 12):
    /// `α₀` until `t/T = 0.5`, linear decay to `r α₀` at `t/T = 0.9`, then `r α₀`
    /// (`r = 0.01` in the papers).
    LinearDecay {
        /// Final ratio `r`.
        ratio: f64,
    },
    /// *Flatness* eq. 13, for iterate averaging: eq. 12 with the budget `T_avg` (the epoch
    /// at which averaging starts) and final rate `α_avg = avg_ratio · α₀` (½ in the paper).
    /// The paper's middle case writes `t/T` where `t/T_avg` is meant; we use `t/T_avg`
    /// throughout so the schedule is continuous.
    AveragingDecay {
        /// Epoch `T_avg` at which iterate averaging starts.
        averaging_start: f64,
        /// `α_avg / α₀`.
        avg_ratio: f64,
    },
    /// Granziol & Baskerville, *RMT damping*, eq. 16 (warm ramp): `α₀` until `t/T = 0.1`,
    /// linear up to `κ α₀` at 0.3, linear down to `r α₀` at 0.9, then `r α₀` (`κ = 5`).
    WarmRamp {
        /// Peak factor `κ`.
        kappa: f64,
        /// Final ratio `r`.
        ratio: f64,
    },
}

impl Schedule {
    /// The papers' eq. 12 with `r = 0.01`.
    pub fn paper_linear_decay() -> Self {
        Schedule::LinearDecay { ratio: 0.01 }
    }

    /// The damping paper's eq. 16 with `κ = 5`, `r = 0.01`.
    pub fn paper_warm_ramp() -> Self {
        Schedule::WarmRamp {
            kappa: 5.0,
            ratio: 0.01,
        }
    }

    /// Check the parameters.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`](crate::OptimError::InvalidConfig) for negative or
    /// non-finite ratios, factors ≤ 0, or unsorted milestones.
    pub fn validate(&self) -> Result<()> {
        let ratio_ok = |r: f64| r.is_finite() && r >= 0.0;
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { milestones, gamma } => {
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return Err(invalid(
                        "Schedule::Step",
                        "gamma",
                        gamma,
                        "must be positive",
                    ));
                }
                if milestones.windows(2).any(|w| w[0] > w[1])
                    || milestones.iter().any(|m| !m.is_finite())
                {
                    return Err(invalid(
                        "Schedule::Step",
                        "milestones",
                        format!("{milestones:?}"),
                        "must be finite and ascending",
                    ));
                }
                Ok(())
            }
            Schedule::Cosine { min_ratio } if !ratio_ok(*min_ratio) => Err(invalid(
                "Schedule::Cosine",
                "min_ratio",
                min_ratio,
                "must be ≥ 0",
            )),
            Schedule::LinearDecay { ratio } if !ratio_ok(*ratio) => Err(invalid(
                "Schedule::LinearDecay",
                "ratio",
                ratio,
                "must be ≥ 0",
            )),
            Schedule::AveragingDecay {
                averaging_start,
                avg_ratio,
            } => {
                if !(averaging_start.is_finite() && *averaging_start > 0.0) {
                    return Err(invalid(
                        "Schedule::AveragingDecay",
                        "averaging_start",
                        averaging_start,
                        "must be positive",
                    ));
                }
                if !ratio_ok(*avg_ratio) {
                    return Err(invalid(
                        "Schedule::AveragingDecay",
                        "avg_ratio",
                        avg_ratio,
                        "must be ≥ 0",
                    ));
                }
                Ok(())
            }
            Schedule::WarmRamp { kappa, ratio } => {
                if !(kappa.is_finite() && *kappa > 0.0) {
                    return Err(invalid(
                        "Schedule::WarmRamp",
                        "kappa",
                        kappa,
                        "must be positive",
                    ));
                }
                if !ratio_ok(*ratio) {
                    return Err(invalid("Schedule::WarmRamp", "ratio", ratio, "must be ≥ 0"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `α_t` for base rate `base`, epoch `t` and budget `total` (`T > 0`).
    pub fn learning_rate(&self, base: f64, t: f64, total: f64) -> f64 {
        let f = t / total;
        match self {
            Schedule::Constant => base,
            Schedule::Step { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|m| t >= **m).count() as i32)
            }
            Schedule::Cosine { min_ratio } => {
                let f = f.clamp(0.0, 1.0);
                base * (min_ratio
                    + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * f).cos()))
            }
            Schedule::LinearDecay { ratio } => base * linear_decay(f, *ratio),
            Schedule::AveragingDecay {
                averaging_start,
                avg_ratio,
            } => base * linear_decay(t / averaging_start, *avg_ratio),
            Schedule::WarmRamp { kappa, ratio } => {
                base * if f <= 0.1 {
                    1.0
                } else if f <= 0.3 {
                    1.0 + (kappa - 1.0) * (f - 0.1) / 0.2
                } else if f <= 0.9 {
                    kappa - (kappa - ratio) * (f - 0.3) / 0.6
                } else {
                    *ratio
                }
            }
        }
    }
}

/// Eq. 12's factor: 1 until 0.5, linear to `r` at 0.9, then `r`.
fn linear_decay(f: f64, r: f64) -> f64 {
    if f <= 0.5 {
        1.0
    } else if f <= 0.9 {
        1.0 - (1.0 - r) * (f - 0.5) / 0.4
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schedules are closed-form; values at break points agree to rounding.
    const TOL: f64 = 1e-12;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= TOL * b.abs().max(1.0), "{a} vs {b}");
    }

    #[test]
    fn eq12_break_points() {
        let s = Schedule::paper_linear_decay();
        let (a0, t) = (0.1, 300.0);
        close(s.learning_rate(a0, 0.0, t), 0.1);
        close(s.learning_rate(a0, 150.0, t), 0.1); // t/T = 0.5
        close(
            s.learning_rate(a0, 210.0, t),
            0.1 * (1.0 - 0.99 * 0.2 / 0.4),
        ); // 0.7: halfway
        close(s.learning_rate(a0, 270.0, t), 0.001); // 0.9
        close(s.learning_rate(a0, 299.0, t), 0.001);
    }

    #[test]
    fn eq13_break_points() {
        let s = Schedule::AveragingDecay {
            averaging_start: 160.0,
            avg_ratio: 0.5,
        };
        close(s.learning_rate(0.02, 80.0, 300.0), 0.02);
        close(
            s.learning_rate(0.02, 112.0, 300.0),
            0.02 * (1.0 - 0.5 * 0.2 / 0.4),
        ); // 0.7 T_avg
        close(s.learning_rate(0.02, 144.0, 300.0), 0.01); // 0.9 T_avg: α_avg
        close(s.learning_rate(0.02, 250.0, 300.0), 0.01);
    }

    #[test]
    fn eq16_break_points() {
        let s = Schedule::paper_warm_ramp();
        let a0 = 0.001;
        close(s.learning_rate(a0, 10.0, 100.0), a0);
        close(s.learning_rate(a0, 20.0, 100.0), a0 * 3.0); // halfway up to κ = 5
        close(s.learning_rate(a0, 30.0, 100.0), a0 * 5.0);
        close(s.learning_rate(a0, 60.0, 100.0), a0 * (5.0 - 4.99 * 0.5));
        close(s.learning_rate(a0, 90.0, 100.0), a0 * 0.01);
        close(s.learning_rate(a0, 95.0, 100.0), a0 * 0.01);
    }

    #[test]
    fn step_cosine_and_validation() {
        let s = Schedule::Step {
            milestones: vec![100.0, 150.0],
            gamma: 0.1,
        };
        close(s.learning_rate(1.0, 99.0, 200.0), 1.0);
        close(s.learning_rate(1.0, 100.0, 200.0), 0.1);
        close(s.learning_rate(1.0, 199.0, 200.0), 0.01);
        let c = Schedule::Cosine { min_ratio: 0.0 };
        close(c.learning_rate(1.0, 0.0, 10.0), 1.0);
        close(c.learning_rate(1.0, 5.0, 10.0), 0.5);
        close(c.learning_rate(1.0, 10.0, 10.0), 0.0);
        assert!(
            Schedule::Step {
                milestones: vec![2.0, 1.0],
                gamma: 0.1
            }
            .validate()
            .is_err()
        );
        assert!(
            Schedule::WarmRamp {
                kappa: 0.0,
                ratio: 0.01
            }
            .validate()
            .is_err()
        );
        assert!(Schedule::LinearDecay { ratio: -1.0 }.validate().is_err());
        assert!(Schedule::paper_warm_ramp().validate().is_ok());
    }
}
