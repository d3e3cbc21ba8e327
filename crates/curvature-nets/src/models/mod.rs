//! Models built from the twice-differentiable layers.

mod cnn;
mod logistic;
mod mlp;

pub use cnn::{Pooling, SimpleCnn, SimpleCnnConfig};
pub use logistic::{LogisticRegression, LogisticRegressionConfig};
pub use mlp::{Mlp, MlpConfig};
