//! Dense matrices as operators, and dense f64 references built from any operator.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use nalgebra::{DMatrix, SymmetricEigen};

use super::{LinearOperator, check_len};
use crate::error::{CurvatureError, Result, invalid};

/// A dense symmetric matrix on the device, as a [`LinearOperator`] (`Av` by one matmul).
#[derive(Debug, Clone)]
pub struct DenseOperator<B: Backend> {
    matrix: Tensor<B, 2>,
}

impl<B: Backend> DenseOperator<B> {
    /// Wrap a square matrix `[P, P]`.
    ///
    /// # Errors
    /// [`CurvatureError::DimensionMismatch`] if the matrix is not square.
    pub fn new(matrix: Tensor<B, 2>) -> Result<Self> {
        let [r, c] = matrix.dims();
        if r != c {
            return Err(CurvatureError::DimensionMismatch {
                what: "columns of a square matrix".into(),
                expected: r,
                got: c,
            });
        }
        Ok(Self { matrix })
    }

    /// Upload an nalgebra matrix.
    ///
    /// # Errors
    /// As [`DenseOperator::new`].
    pub fn from_nalgebra(matrix: &DMatrix<f64>, device: &B::Device) -> Result<Self> {
        let (r, c) = matrix.shape();
        // nalgebra is column-major; transpose into row-major data.
        let data: Vec<f64> = matrix.transpose().as_slice().to_vec();
        Self::new(Tensor::from_data(TensorData::new(data, [r, c]), device))
    }

    /// The matrix.
    pub fn matrix(&self) -> &Tensor<B, 2> {
        &self.matrix
    }
}

impl<B: Backend> LinearOperator<B> for DenseOperator<B> {
    fn dim(&self) -> usize {
        self.matrix.dims()[0]
    }
    fn device(&self) -> B::Device {
        self.matrix.device()
    }
    fn apply(&self, v: &Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        let n = self.dim();
        check_len(v, n)?;
        Ok(self
            .matrix
            .clone()
            .matmul(v.clone().reshape([n, 1]))
            .reshape([n]))
    }
}

/// Limits for dense references.
#[derive(Debug, Clone, Copy)]
pub struct DenseReferenceConfig {
    /// Largest dimension for which a dense matrix is formed (default 5 000: a 5 000² f64
    /// matrix is 200 MB and takes 5 000 operator applications).
    pub max_dim: usize,
}

impl Default for DenseReferenceConfig {
    fn default() -> Self {
        Self { max_dim: 5_000 }
    }
}

/// Form the dense matrix of an operator column by column, `A[:, j] = A e_j`, in f64.
///
/// This is the ground truth every curvature test compares against (SPEC §2). The result is
/// *not* symmetrised; [`dense_spectrum`] reports the asymmetry.
///
/// # Errors
/// [`CurvatureError::TooLarge`] if `op.dim() > config.max_dim`; errors of `op.apply`.
pub fn dense_matrix<B: Backend, A: LinearOperator<B> + ?Sized>(
    op: &A,
    config: DenseReferenceConfig,
) -> Result<DMatrix<f64>> {
    let n = op.dim();
    if config.max_dim == 0 {
        return Err(invalid("max_dim", 0, "must be positive"));
    }
    if n > config.max_dim {
        return Err(CurvatureError::TooLarge {
            dim: n,
            limit: config.max_dim,
        });
    }
    let device = op.device();
    let mut m = DMatrix::<f64>::zeros(n, n);
    for j in 0..n {
        let mut e = vec![0.0f64; n];
        e[j] = 1.0;
        let col = op.apply(&Tensor::from_data(TensorData::new(e, [n]), &device))?;
        for (i, x) in col.into_data().iter::<f64>().enumerate() {
            m[(i, j)] = x;
        }
    }
    Ok(m)
}

/// Exact eigendecomposition of a dense reference.
#[derive(Debug, Clone)]
pub struct DenseSpectrum {
    /// Eigenvalues in ascending order.
    pub eigenvalues: Vec<f64>,
    /// Matching unit eigenvectors (columns).
    pub eigenvectors: DMatrix<f64>,
    /// `max|A − Aᵀ| / max|A|` of the matrix before symmetrisation.
    pub asymmetry: f64,
}

/// Eigendecompose `(A + Aᵀ)/2` with nalgebra's `SymmetricEigen`.
pub fn dense_spectrum(matrix: &DMatrix<f64>) -> DenseSpectrum {
    let scale = matrix.amax().max(f64::MIN_POSITIVE);
    let asymmetry = (matrix - matrix.transpose()).amax() / scale;
    let sym = (matrix + matrix.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym);
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let eigenvalues = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let eigenvectors = DMatrix::from_fn(matrix.nrows(), order.len(), |r, c| {
        eig.eigenvectors[(r, order[c])]
    });
    DenseSpectrum {
        eigenvalues,
        eigenvectors,
        asymmetry,
    }
}
