//! A dense layer's product `x Wᵀ` and its two adjoints on Flex (`f32`), each one call of
//! `gemm`'s matrix product (the kernels burn-flex itself calls) writing straight into a buffer
//! of our own, as a [`Bilinear`] family — so the layer's gradient and its exact
//! Hessian-vector products both run on these calls.
//!
//! For `x: [N, I]`, `W: [O, I]` (PyTorch's `nn.Linear` layout) and `g: [N, O]`:
//!
//! * `f(x, W) = x Wᵀ`, `[N, O]`;
//! * `f_x(g, W) = g W`, `[N, I]`: `⟨g W, x⟩ = Σ g_no W_oi x_ni = ⟨g, x Wᵀ⟩`;
//! * `f_W(x, g) = gᵀ x`, `[O, I]`: `⟨gᵀ x, W⟩ = Σ g_no x_ni W_oi = ⟨g, x Wᵀ⟩`.
//!
//! Operands are read in place through their strides, so the transposes cost nothing.
//!
//! Why: burn-flex 0.21 allocates every matrix product's output as a zero-filled `Vec<u8>`,
//! which `Bytes` then copies into a 16-byte-aligned buffer (`FlexTensor::empty`). In the
//! two-thread MLP gradient perf put that copy at 16 % and the zero fill at 9 % of the calling
//! thread (docs/benchmarks.md, "Dense layers and ReLU as our own operations on Flex"). Here
//! each output is allocated once, uninitialised, and written once by `gemm`. The threads split
//! the output into tiles and each tile sums over `k` in one fixed order, so results do not
//! depend on the thread count (as burn-flex's own products).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use gemm::Parallelism;
use rayon::prelude::*;

use super::bilinear::Bilinear;
use super::flex_f32::flex_tensor;

/// The product `x Wᵀ` of a dense layer (no geometry besides the operands' shapes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenseProduct;

/// Products of at least this many multiply-adds (`m·n·k`) are split between rayon's threads:
/// burn-flex's own threshold, below which the threads' start-up cost more than they saved.
const THREADS_FROM: usize = 192 * 192 * 192;

/// A 2-D `f32` matrix read in place: its buffer, the position of element `(0, 0)` and its
/// strides (in elements, either sign).
#[derive(Clone, Copy)]
struct Matrix<'a> {
    values: &'a [f32],
    start: usize,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    /// `t` as a matrix; `None` unless it is an `f32` tensor of rank 2.
    fn of(t: &'a FlexTensor) -> Option<Self> {
        let layout = t.layout();
        if t.dtype() != DType::F32 || layout.num_dims() != 2 {
            return None;
        }
        let (dims, strides) = (layout.shape(), layout.strides());
        Some(Self {
            values: t.storage::<f32>(),
            start: layout.start_offset(),
            rows: dims[0],
            cols: dims[1],
            row_stride: strides[0],
            col_stride: strides[1],
        })
    }

    /// The transpose, as a view.
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The element at row `r`, column `c`.
    fn at(&self, r: usize, c: usize) -> f32 {
        let offset = r as isize * self.row_stride + c as isize * self.col_stride;
        self.values[(self.start as isize + offset) as usize]
    }

    /// The matrix's elements in column-major order (`None` if they already are, in place):
    /// columns shared between rayon's threads, each read in blocks of rows.
    fn column_major(&self) -> Option<Vec<f32>> {
        if self.row_stride == 1 || self.rows * self.cols == 0 {
            return None;
        }
        const COLUMNS_PER_TASK: usize = 64;
        const ROWS_PER_BLOCK: usize = 32;
        let rows = self.rows;
        let mut out = vec![0.0f32; rows * self.cols];
        out.par_chunks_mut(rows * COLUMNS_PER_TASK)
            .enumerate()
            .for_each(|(task, columns)| {
                let first = task * COLUMNS_PER_TASK;
                for r0 in (0..rows).step_by(ROWS_PER_BLOCK) {
                    let r1 = (r0 + ROWS_PER_BLOCK).min(rows);
                    for (j, column) in columns.chunks_exact_mut(rows).enumerate() {
                        for (r, slot) in column[r0..r1].iter_mut().enumerate() {
                            *slot = self.at(r0 + r, first + j);
                        }
                    }
                }
            });
        Some(out)
    }

    fn origin(&self) -> *const f32 {
        // Bounds-checked: a layout's start lies inside its buffer (at its end when empty).
        self.values[self.start..].as_ptr()
    }
}

/// `a b` as a new row-major `f32` tensor, written once by `gemm`; `None` if either operand is
/// not an `f32` matrix or their inner sizes differ (the caller falls back to burn's
/// `matmul`, which reports the mismatch).
fn product(a: Option<Matrix<'_>>, b: Option<Matrix<'_>>) -> Option<FlexTensor> {
    let (a, b) = (a?, b?);
    if a.cols != b.rows {
        return None;
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let len = m.checked_mul(n)?;
    let mut out = Vec::<f32>::with_capacity(len);
    if len > 0 {
        let parallelism = if len.saturating_mul(k) >= THREADS_FROM {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        };
        // SAFETY: `out` has room for the `m × n` row-major result (`dst_cs = 1`,
        // `dst_rs = n`). With `read_dst = false` gemm never reads the destination and writes
        // every element of it (zeros when `k = 0`), so all `len` elements are initialised
        // before `set_len`. The operands' origins and strides come from valid Flex layouts of
        // `m × k` and `k × n` tensors whose buffers outlive the call.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.origin(),
                a.col_stride,
                a.row_stride,
                b.origin(),
                b.col_stride,
                b.row_stride,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
            out.set_len(len);
        }
    }
    Some(flex_tensor(out, Shape::new([m, n])))
}

impl Bilinear<Flex> for DenseProduct {
    /// `x Wᵀ`, computed as `(W xᵀ)ᵀ`: a transposed view of a row-major `[O, N]` buffer, from
    /// `x` in column-major order (copied into it, in parallel blocks, unless it is already).
    ///
    /// Why: `gemm` works on column-major outputs and repacks a left factor that is not
    /// column-major, on the calling thread. Asked for a row-major `x Wᵀ`, it computes the
    /// column-major `W xᵀ`, whose left factor is the row-major `W`, the largest operand,
    /// repacked in every forward pass (perf: three quarters of the calling thread in the
    /// two-thread MLP gradient). Asked for `W xᵀ` row-major, it computes the column-major
    /// `x Wᵀ`: it reads `Wᵀ` in place as the right factor, and `x` as the left one, in place
    /// once column-major. Measured in one binary, MLP at two threads (docs/benchmarks.md):
    /// gradient 15.3/9.7/10.1 ms by burn's `matmul` → 12.2/7.9/8.1 with `x` repacked by
    /// `gemm` → 7.1/7.1/6.9 with `x` copied column-major first.
    fn apply(self, x: FlexTensor, w: FlexTensor) -> FlexTensor {
        if let Some(x_matrix) = Matrix::of(&x) {
            let copy = x_matrix.column_major();
            let x_matrix = match &copy {
                Some(values) => Matrix {
                    values,
                    start: 0,
                    row_stride: 1,
                    col_stride: x_matrix.rows as isize,
                    ..x_matrix
                },
                None => x_matrix,
            };
            if let Some(z) = product(Matrix::of(&w), Some(x_matrix.t())) {
                return Flex::float_transpose(z);
            }
        }
        Flex::float_matmul(x, Flex::float_transpose(w))
    }

    /// `g W`.
    fn adjoint_x(self, g: FlexTensor, w: FlexTensor, _: &Shape) -> FlexTensor {
        if let Some(dx) = product(Matrix::of(&g), Matrix::of(&w)) {
            return dx;
        }
        Flex::float_matmul(g, w)
    }

    /// `gᵀ x`.
    fn adjoint_w(self, x: FlexTensor, g: FlexTensor, _: &Shape) -> FlexTensor {
        if let Some(dw) = product(Matrix::of(&g).map(Matrix::t), Matrix::of(&x)) {
            return dw;
        }
        Flex::float_matmul(Flex::float_transpose(g), x)
    }
}
