//! Models built from the twice-differentiable layers.

mod all_cnn;
mod chosen;
mod cnn;
mod logistic;
mod mlp;
mod preresnet;
mod vgg;
mod wide_resnet;

pub use all_cnn::{AllCnn, AllCnnConfig};
pub use chosen::AnyModel;
pub use cnn::{Pooling, SimpleCnn, SimpleCnnConfig};
pub use logistic::{LogisticRegression, LogisticRegressionConfig};
pub use mlp::{Mlp, MlpConfig};
pub use preresnet::{PreActBlock, PreResNet, PreResNetConfig, ResidualBlock};
pub use vgg::{Vgg, VggConfig, VggLayer};
pub use wide_resnet::{WideBlock, WideResNet, WideResNetConfig};

mod conv_stack;
