//! 2-D convolution for training on the CPU: im2col as a candle custom op, then one batched
//! matrix product, so both passes run through candle's GEMM.
//!
//! Shapes: `x [B, C, H, W]`, `weight [O, C, k, k]` → `[B, O, H', W']` with
//! `H' = (H + 2p − k) / s + 1`. `im2col(x)` is `[C·k², B·H'·W']` (rows ordered `(c, ky, kx)`,
//! matching the weight's layout; the whole batch side by side, so one GEMM does the batch) and
//! its gradient is `col2im`, the scatter-add back.
//!
//! Why not candle's `conv2d`: on the CPU its backward pass computes the input gradient with a
//! direct transposed convolution (a dot product per output element) and the kernel gradient as a
//! convolution with an `H' × W'` kernel; a 32×32 image network spent most of a step there. On
//! CUDA candle's kernels are used unchanged.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn col_rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// For one row `(c, ky, kx)` of the column matrix, calls `visit(position, input_index, len)`
    /// for every output row `oy` whose patch element lies inside the image: the `len` output
    /// positions from `position` (in `0 .. H'·W'`) read one sample's `[C, H, W]` from
    /// `input_index` on, `stride` apart. Padding is skipped.
    fn for_each_run(&self, row: usize, mut visit: impl FnMut(usize, usize, usize)) {
        let (out_h, out_w) = (self.out_h(), self.out_w());
        let (channel, ky, kx) = (
            row / (self.kernel * self.kernel),
            (row / self.kernel) % self.kernel,
            row % self.kernel,
        );
        // Output columns whose input column `ox·s + kx − p` is inside `0 .. W`.
        let first = self.padding.saturating_sub(kx).div_ceil(self.stride);
        let end = match (self.width + self.padding).checked_sub(kx + 1) {
            Some(last_offset) => (last_offset / self.stride + 1).min(out_w),
            None => 0,
        };
        if first >= end {
            return;
        }
        for oy in 0..out_h {
            let iy = (oy * self.stride + ky) as isize - self.padding as isize;
            if iy < 0 || iy >= self.height as isize {
                continue;
            }
            let ix = first * self.stride + kx - self.padding;
            visit(
                oy * out_w + first,
                (channel * self.height + iy as usize) * self.width + ix,
                end - first,
            );
        }
    }
}

/// The f32 values of a contiguous CPU tensor, or an error naming the custom op `op`.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op}: expected f32 values");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("{op}: expected a contiguous tensor"),
    }
}

struct Im2Col(Geometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "fieldsynth-im2col"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout, self.name())?;
        let geometry = self.0;
        let per_sample = geometry.channels * geometry.height * geometry.width;
        let n_out = geometry.out_h() * geometry.out_w();
        let batch = layout.dims()[0];
        let mut cols = vec![0.0_f32; geometry.col_rows() * batch * n_out];
        cols.par_chunks_mut(batch * n_out).enumerate().for_each(|(row, out)| {
            for (sample, out) in out.chunks_mut(n_out).enumerate() {
                let image = &input[sample * per_sample..(sample + 1) * per_sample];
                geometry.for_each_run(row, |position, inp, len| {
                    let out = &mut out[position..position + len];
                    if geometry.stride == 1 {
                        out.copy_from_slice(&image[inp..inp + len]);
                    } else {
                        for (k, out) in out.iter_mut().enumerate() {
                            *out = image[inp + k * geometry.stride];
                        }
                    }
                });
            }
        });
        Ok((CpuStorage::F32(cols), Shape::from((geometry.col_rows(), batch * n_out))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

struct Col2Im(Geometry);

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "fieldsynth-col2im"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = contiguous_f32(storage, layout, self.name())?;
        let geometry = self.0;
        let per_sample = geometry.channels * geometry.height * geometry.width;
        let n_out = geometry.out_h() * geometry.out_w();
        let batch = layout.dims()[1] / n_out;
        let mut image = vec![0.0_f32; batch * per_sample];
        image.par_chunks_mut(per_sample).enumerate().for_each(|(sample, out)| {
            for row in 0..geometry.col_rows() {
                let grads =
                    &cols[(row * batch + sample) * n_out..(row * batch + sample + 1) * n_out];
                geometry.for_each_run(row, |position, inp, len| {
                    let grads = &grads[position..position + len];
                    if geometry.stride == 1 {
                        for (out, grad) in out[inp..inp + len].iter_mut().zip(grads) {
                            *out += grad;
                        }
                    } else {
                        for (k, grad) in grads.iter().enumerate() {
                            out[inp + k * geometry.stride] += grad;
                        }
                    }
                });
            }
        });
        Ok((
            CpuStorage::F32(image),
            Shape::from((batch, geometry.channels, geometry.height, geometry.width)),
        ))
    }
}

/// Convolution (no bias): im2col on the CPU, candle's own kernel elsewhere.
pub fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return Ok(x.conv2d(weight, padding, stride, 1, 1)?);
    }
    let (batch, channels, height, width) = x.dims4()?;
    let (out_channels, _, kernel, _) = weight.dims4()?;
    let geometry = Geometry { channels, height, width, kernel, stride, padding };
    let cols = x.contiguous()?.apply_op1(Im2Col(geometry))?;
    let kernel_matrix = weight.reshape((out_channels, geometry.col_rows()))?;
    // One GEMM for the whole batch: [O, C·k²] × [C·k², B·H'·W'] → [O, B, H', W'] → [B, O, H', W'].
    let out = kernel_matrix.matmul(&cols)?.reshape((
        out_channels,
        batch,
        geometry.out_h(),
        geometry.out_w(),
    ))?;
    Ok(out.transpose(0, 1)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// Forward values and both gradients agree with candle's own convolution (square inputs:
    /// candle's CPU backward mis-sizes the input gradient of a strided non-square image).
    #[test]
    fn matches_candle_conv2d() -> Result<()> {
        let device = Device::Cpu;
        for (stride, padding, height) in
            [(1, 1, 8), (2, 1, 8), (2, 1, 7), (1, 0, 5), (2, 0, 6), (3, 2, 7)]
        {
            let mut rng = models::rng::stream(stride as u64 * 10 + height as u64, "test/conv");
            let x = Var::from_vec(
                models::rng::normal_f32(&mut rng, 2 * 3 * height * height),
                (2, 3, height, height),
                &device,
            )?;
            let w =
                Var::from_vec(models::rng::normal_f32(&mut rng, 4 * 3 * 9), (4, 3, 3, 3), &device)?;
            let ours = conv2d(x.as_tensor(), w.as_tensor(), stride, padding)?;
            let theirs = x.as_tensor().conv2d(w.as_tensor(), padding, stride, 1, 1)?;
            assert_eq!(ours.dims(), theirs.dims());
            let forward_diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(forward_diff < 1e-5, "forward {forward_diff}");
            // Gradients of a weighted sum, so every output position matters differently.
            let weights = Tensor::from_vec(
                models::rng::normal_f32(&mut rng, ours.elem_count()),
                ours.dims(),
                &device,
            )?;
            let grads_ours = (ours * &weights)?.sum_all()?.backward()?;
            let grads_theirs = (theirs * &weights)?.sum_all()?.backward()?;
            for var in [&x, &w] {
                let (a, b) = (grads_ours.get(var.as_tensor()), grads_theirs.get(var.as_tensor()));
                let (Some(a), Some(b)) = (a, b) else { panic!("missing gradient") };
                let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff < 1e-4,
                    "gradient differs by {diff} (stride {stride}, padding {padding})"
                );
            }
        }
        Ok(())
    }
}
