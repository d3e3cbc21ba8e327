//! One integration-test binary for the crate (one link of burn instead of one per file).

mod fashion_mnist_logreg;
mod networks;
mod objective_errors;
mod optdigits_logreg;
mod softmax_reference;
