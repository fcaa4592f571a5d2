//! Unrolling images into columns (im2col) for [`super::fast_conv`]'s forward pass and
//! weight gradient on the CPU, every value written once, in parallel, without zeroing the
//! buffer first ([`super::par_fill`]).

use std::mem::MaybeUninit;

use super::par_fill::{par_filled, write_all, write_from};

/// The geometry of a convolution with a square kernel, square stride and padding, over a
/// batch of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConvShape {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Zero padding, each side.
    pub padding: usize,
}

impl ConvShape {
    /// The geometry of a convolution of `input` (`[B, C, H, W]`) into `output` positions
    /// (`[Ho, Wo]`).
    pub fn new(
        [batch, channels, height, width]: [usize; 4],
        [out_h, out_w]: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            batch,
            channels,
            height,
            width,
            out_h,
            out_w,
            kernel,
            stride,
            padding,
        }
    }

    /// The geometry of a convolution of `input` (`[B, C, H, W]`) with a `kernel` side
    /// kernel; `None` when the kernel or the stride is 0, or the kernel is larger than the
    /// padded input.
    pub fn of(input: [usize; 4], kernel: usize, stride: usize, padding: usize) -> Option<Self> {
        if kernel == 0 || stride == 0 {
            return None;
        }
        let [_, _, height, width] = input;
        let side = |n: usize| {
            (n + 2 * padding)
                .checked_sub(kernel)
                .map(|span| span / stride + 1)
        };
        Some(Self::new(
            input,
            [side(height)?, side(width)?],
            kernel,
            stride,
            padding,
        ))
    }

    /// Output positions of the whole batch, `B·Ho·Wo`: the columns of the unrolled input.
    pub fn positions(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }

    /// Rows of the unrolled input, `C·k·k`.
    pub fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// The same geometry over `batch` images.
    pub fn with_batch(self, batch: usize) -> Self {
        Self { batch, ..self }
    }

    /// The output columns `j` (a range `j0..j1`, empty when none) whose input column
    /// `j·stride + kw − padding` lies inside the image.
    fn valid_cols(&self, kw: usize) -> (usize, usize) {
        let first = self
            .padding
            .saturating_sub(kw)
            .div_ceil(self.stride)
            .min(self.out_w);
        let end = (self.width + self.padding)
            .checked_sub(kw)
            .map_or(0, |limit| limit.div_ceil(self.stride))
            .min(self.out_w);
        (first, end.max(first))
    }
}

/// Unrolls `x` into columns: row `(c, kh, kw)`, column `(b, i, j)` holds
/// `x[b, c, i·stride + kh − padding, j·stride + kw − padding]` (0 outside the image).
///
/// # Shapes
/// - `x`: `[B, C, H, W]` (contiguous) -> `[C·k·k, B·Ho·Wo]`
pub(super) fn im2col(x: &[f32], s: ConvShape) -> Vec<f32> {
    let ConvShape {
        batch,
        channels,
        height,
        width,
        out_h,
        out_w,
        kernel: k,
        stride,
        padding,
    } = s;
    let fill = |row: usize, dst: &mut [MaybeUninit<f32>]| {
        let (c, kh, kw) = (row / (k * k), (row / k) % k, row % k);
        let (j0, j1) = s.valid_cols(kw);
        for b in 0..batch {
            let plane = &x[(b * channels + c) * height * width..][..height * width];
            for i in 0..out_h {
                let out = &mut dst[(b * out_h + i) * out_w..][..out_w];
                let ih = (i * stride + kh).checked_sub(padding).filter(|ih| *ih < height);
                let Some(ih) = ih.filter(|_| j0 < j1) else {
                    write_all(out, 0.0);
                    continue;
                };
                let src = &plane[ih * width..][..width];
                let first_in = j0 * stride + kw - padding;
                write_all(&mut out[..j0], 0.0);
                if stride == 1 {
                    write_from(&mut out[j0..j1], &src[first_in..first_in + (j1 - j0)]);
                } else {
                    for (n, value) in out[j0..j1].iter_mut().enumerate() {
                        value.write(src[first_in + n * stride]);
                    }
                }
                write_all(&mut out[j1..], 0.0);
            }
        }
    };
    let positions = s.positions();
    // SAFETY: `fill` writes each of its row's `batch · out_h` runs of `out_w` values whole:
    // zeros, or zeros, the image's values and zeros (j0 <= j1 <= out_w)
    unsafe { par_filled(s.rows() * positions, positions, fill) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_hold_each_window_with_zeros_outside_the_image() {
        // one 2x3 image, 2x2 kernel, padding 1, stride 2: windows whose top left corners
        // are at rows -1, 1 and columns -1, 1
        let x = [1., 2., 3., 4., 5., 6.];
        let s = ConvShape::of([1, 1, 2, 3], 2, 2, 1).expect("a 2x2 kernel fits");
        assert_eq!((s.out_h, s.out_w), (2, 2));
        #[rustfmt::skip]
        let expected = [
            0., 0., 0., 5., // (kh, kw) = (0, 0): the window's top left pixel
            0., 0., 4., 6., // (0, 1)
            0., 2., 0., 0., // (1, 0)
            1., 3., 0., 0., // (1, 1)
        ];
        assert_eq!(im2col(&x, s), expected);
    }

    #[test]
    fn shapes_need_a_kernel_that_fits_the_padded_input() {
        let s = ConvShape::of([2, 3, 7, 10], 3, 2, 1).expect("fits");
        assert_eq!((s.out_h, s.out_w), (4, 5));
        assert_eq!(ConvShape::of([1, 1, 4, 9], 7, 1, 1), None, "7 > 4 + 2");
        assert_eq!(ConvShape::of([1, 1, 4, 4], 0, 1, 0), None, "kernel 0");
        assert_eq!(ConvShape::of([1, 1, 4, 4], 3, 0, 0), None, "stride 0");
    }
}
