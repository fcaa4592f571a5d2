//! A 2-D convolution (no bias, one group) of its own on the CPU: the forward pass and the
//! weight gradient are im2col and matrix products.
//!
//! burn's default weight gradient is itself a convolution, of the input with the output
//! gradient as its kernel. flex runs that as many thin matrix products: for a CIFAR
//! ResNet's 3x3 layers it took about 3x the forward pass, most of a training step. Here the
//! input is unrolled (`[C·k·k, B·Ho·Wo]`, a few images at a time) and multiplied by the
//! output gradient. burn's forward pass converted the batch to channels-last and back
//! around its product; [`forward`] multiplies the unrolled input by the weights instead.
//! The input gradient stays burn's. On any other device, or with a kernel that is not
//! square, [`conv2d`] is burn's `conv2d`.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;

use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::par_fill::{par_filled, write_from};
use super::unroll::{ConvShape, im2col};

/// The convolution as a backend extension, so that autodiff on flex can carry its own
/// backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait Im2colConv: Backend {
    /// Convolution without bias, square stride and padding, one group.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`, `weight`: `[O, C, k, k]` -> `[B, O, Ho, Wo]`
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

fn options(stride: usize, padding: usize) -> ConvOptions<2> {
    ConvOptions::new([stride, stride], [padding, padding], [1, 1], 1)
}

impl Im2colConv for Flex {
    fn conv2d_im2col(x: FlexTensor, weight: FlexTensor, stride: usize, padding: usize) -> FlexTensor {
        forward(x, weight, stride, padding)
    }
}

/// The backward pass: burn's input gradient, [`weight_grad`] for the weights.
#[derive(Debug)]
struct Conv2dIm2colBackward;

impl Backward<Flex, 2> for Conv2dIm2colBackward {
    /// Checkpointed input and weight, stride, padding.
    type State = (NodeId, NodeId, usize, usize);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, stride, padding) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        if let Some(node) = node_x {
            let grad_x =
                Flex::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options(stride, padding));
            grads.register::<Flex>(node.id, grad_x);
        }
        if let Some(node) = node_weight {
            grads.register::<Flex>(node.id, weight_grad(x, weight, grad, stride, padding));
        }
    }
}

impl<C: CheckpointStrategy> Im2colConv for Autodiff<Flex, C> {
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let prep = Conv2dIm2colBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = forward(x.into_primitive(), weight.into_primitive(), stride, padding);
                prep.finish((x_state, weight_state, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
            )),
        }
    }
}

/// A convolution without bias on the CPU: the batch unrolled a few images at a time
/// ([`im2col`]) and multiplied by the weights, the parts side by side, each written straight
/// into its images' place.
///
/// burn's own converts the batch to channels-last and back around its product; for a CIFAR
/// ResNet's 16-channel layers that took twice as long as the product itself.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `weight`: `[O, C, k, k]` -> `[B, O, Ho, Wo]`
pub fn forward(x: FlexTensor, weight: FlexTensor, stride: usize, padding: usize) -> FlexTensor {
    let [batch, channels, height, width] = dims4(&x);
    let [outputs, inputs, k, kw] = dims4(&weight);
    let f32s = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    let ours = f32s && k == kw && inputs == channels && batch > 0 && outputs > 0 && channels > 0;
    let shape = ConvShape::of([batch, channels, height, width], k, stride, padding);
    let Some(shape) = shape.filter(|_| ours) else {
        return Flex::conv2d(x, weight, None, options(stride, padding));
    };
    let (out_h, out_w) = (shape.out_h, shape.out_w);
    let spatial = out_h * out_w;
    let rows = shape.rows();
    let weight = Flex::float_reshape(weight, Shape::new([outputs, rows])).to_contiguous();
    let x = x.to_contiguous();
    let x_values = x.storage::<f32>();
    let image_len = channels * height * width;
    let Parts { images, side_by_side } = Parts::of(shape, outputs);
    let image_out = outputs * spatial;
    // the output of images `first..first + n`: [O, C·k·k] x [C·k·k, n·Ho·Wo], written as
    // [n, O, Ho·Wo]
    let part = |first: usize, dst: &mut [MaybeUninit<f32>]| {
        let n = dst.len() / image_out;
        let cols = im2col(
            &x_values[first * image_len..][..n * image_len],
            shape.with_batch(n),
        );
        let cols = FlexTensor::from_data(TensorData::new(cols, [rows, n * spatial]));
        let product = Flex::float_matmul(weight.clone(), cols).to_contiguous();
        let product = product.storage::<f32>();
        for b in 0..n {
            for o in 0..outputs {
                let src = &product[(o * n + b) * spatial..][..spatial];
                write_from(&mut dst[(b * outputs + o) * spatial..][..spatial], src);
            }
        }
    };
    // one chunk per part side by side, or one chunk doing the parts one after another
    let chunk_images = if side_by_side { images } else { batch };
    let fill = |chunk: usize, dst: &mut [MaybeUninit<f32>]| {
        for (i, part_dst) in dst.chunks_mut(images * image_out).enumerate() {
            part(chunk * chunk_images + i * images, part_dst);
        }
    };
    // SAFETY: chunks and their parts hold whole images (multiples of `O · Ho·Wo` values),
    // and `part` writes each of its images' `O` runs of `Ho·Wo` values
    let values = unsafe { par_filled(batch * image_out, chunk_images * image_out, fill) };
    FlexTensor::from_data(TensorData::new(values, [batch, outputs, out_h, out_w]))
}

/// Gradient of the loss with respect to the weights of a convolution without bias.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `weight`: `[O, C, k, k]`, `grad`: `[B, O, Ho, Wo]` -> `[O, C, k, k]`
pub fn weight_grad(
    x: FlexTensor,
    weight: FlexTensor,
    grad: FlexTensor,
    stride: usize,
    padding: usize,
) -> FlexTensor {
    let [batch, channels, height, width] = dims4(&x);
    let [outputs, _, k, _] = dims4(&weight);
    let [_, _, out_h, out_w] = dims4(&grad);
    let per_image = channels * k * k * out_h * out_w;
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 || per_image == 0 || batch == 0 {
        return Flex::conv2d_weight_backward(x, weight, grad, options(stride, padding));
    }
    let x = x.to_contiguous();
    let x_values = x.storage::<f32>();
    // [B, O, Ho, Wo] -> [B·Ho·Wo, O], rows in the columns' (b, i, j) order
    let grad = Flex::float_reshape(
        Flex::float_permute(grad, &[0, 2, 3, 1]),
        Shape::new([batch * out_h * out_w, outputs]),
    )
    .to_contiguous();
    let grad_values = grad.storage::<f32>();
    let (image_len, grad_len) = (channels * height * width, out_h * out_w * outputs);
    let shape = ConvShape::new(
        [batch, channels, height, width],
        [out_h, out_w],
        k,
        stride,
        padding,
    );
    let Parts { images, side_by_side } = Parts::of(shape, outputs);
    // [C·k·k, O] of up to `images` images starting at `first`
    let part = |first: usize| {
        let n = images.min(batch - first);
        let cols = im2col(
            &x_values[first * image_len..(first + n) * image_len],
            shape.with_batch(n),
        );
        let positions = n * out_h * out_w;
        let cols = FlexTensor::from_data(TensorData::new(cols, [shape.rows(), positions]));
        let rows = grad_values[first * grad_len..(first + n) * grad_len].to_vec();
        let rows = FlexTensor::from_data(TensorData::new(rows, [positions, outputs]));
        Flex::float_matmul(cols, rows)
    };
    let starts: Vec<usize> = (0..batch).step_by(images).collect();
    let products: Vec<FlexTensor> = if side_by_side {
        starts.into_par_iter().map(part).collect()
    } else {
        starts.into_iter().map(part).collect()
    };
    // summed in the parts' order; batch >= 1, so there is at least one part and `part(0)`
    // is never called
    let grad_t = products
        .into_iter()
        .reduce(Flex::float_add)
        .unwrap_or_else(|| part(0));
    Flex::float_reshape(
        Flex::float_swap_dims(grad_t, 0, 1),
        Shape::new([outputs, channels, k, k]),
    )
}

/// The most values one im2col buffer of a wide layer holds (128 MiB of f32): larger
/// batches are unrolled a few images at a time, one part after another.
const MAX_COLUMN_VALUES: usize = 1 << 25;

/// The column values of one part for a small layer (4 MiB of f32), parts side by side.
const PART_COLUMN_VALUES: usize = 1 << 20;

/// Layers whose weights have at least this many values (`C·k·k·O`) keep both cores busy in
/// one product.
const WIDE_RESULT_VALUES: usize = 1 << 17;

/// How [`forward`] and [`weight_grad`] unroll a layer's batch: so many images per part,
/// the parts side by side or one after another.
///
/// A small layer (`C·k·k·O` under [`WIDE_RESULT_VALUES`]; a CIFAR ResNet's: 2k to 37k)
/// makes products that one core runs alone (the weight gradient's inner dimension is
/// `B·Ho·Wo`), so its batch is cut into parts of [`PART_COLUMN_VALUES`] multiplied side by
/// side from cache (4x faster weight gradient for a 16-channel 3x3 layer at batch 64). A
/// wide layer (the primary convolutions) is parallel enough in one product: as few parts as
/// [`MAX_COLUMN_VALUES`] allows, one after another, so that only one part's columns are
/// alive at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    /// Images per part (at least one; the last part may hold fewer).
    images: usize,
    /// Whether the parts run side by side.
    side_by_side: bool,
}

impl Parts {
    /// The parts of `shape`'s batch for a layer of `outputs` filters.
    fn of(shape: ConvShape, outputs: usize) -> Self {
        let side_by_side = shape.rows() * outputs < WIDE_RESULT_VALUES;
        let budget = if side_by_side {
            PART_COLUMN_VALUES
        } else {
            MAX_COLUMN_VALUES
        };
        let per_image = shape.rows() * shape.out_h * shape.out_w;
        Self {
            images: (budget / per_image.max(1)).clamp(1, shape.batch.max(1)),
            side_by_side,
        }
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// Whether `x` is a flex tensor with autodiff, where this module's and [`super::fast_bn`]'s
/// own backward passes apply (device equality ignores autodiff).
pub(super) fn on_flex_autodiff(x: &Tensor<4>) -> bool {
    x.is_autodiff() && x.device() == Device::flex()
}

/// Whether [`conv2d`] runs its own convolution ([`forward`], and on an autodiff device
/// [`weight_grad`] in the backward pass): `x` is on the flex device and the kernel is square.
fn own_conv(x: &Tensor<4>, weight: &Tensor<4>) -> bool {
    let [.., kh, kw] = weight.dims();
    kh == kw && x.device() == Device::flex()
}

/// `conv2d(x, weight) + bias` with one group; on the flex device the convolution is
/// [`conv2d`]'s and the bias is added afterwards.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `weight`: `[O, C, k, k]`, `bias`: `[O]` -> `[B, O, Ho, Wo]`
pub fn conv2d_bias(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    if own_conv(&x, &weight) {
        let outputs = bias.dims()[0];
        conv2d(x, weight, stride, padding) + bias.reshape([1, outputs, 1, 1])
    } else {
        burn::tensor::module::conv2d(x, weight, Some(bias), options(stride, padding))
    }
}

/// `conv2d(x, weight)` without bias and with one group; on the flex device with a square
/// kernel it is [`forward`], and with autodiff its weight gradient is [`weight_grad`].
///
/// # Shapes
/// - `x`: `[B, C, H, W]`, `weight`: `[O, C, k, k]` -> `[B, O, Ho, Wo]`
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, stride: usize, padding: usize) -> Tensor<4> {
    if own_conv(&x, &weight) {
        let out = <Dispatch as Im2colConv>::conv2d_im2col(
            x.into_dispatch(),
            weight.into_dispatch(),
            stride,
            padding,
        );
        Tensor::from_dispatch(out)
    } else {
        burn::tensor::module::conv2d(x, weight, None, options(stride, padding))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn random(shape: [usize; 4]) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
    }

    /// A tensor's values on the host.
    pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().expect("f32")
    }

    /// The largest difference between `a` and `b`, relative to `a`'s largest magnitude.
    pub(crate) fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    /// The gradients of `sum(conv(x, w, bias) · g)` for `x` (when it requires one), `w`
    /// and `bias`, on a flex autodiff device.
    fn grads_of(
        conv: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>,
        (x, w, bias, g): (&Tensor<4>, &Tensor<4>, &Tensor<1>, &Tensor<4>),
        x_grad: bool,
    ) -> [Option<Vec<f32>>; 3] {
        let ad = Device::flex().autodiff();
        let mut xa = Tensor::<4>::from_data(x.to_data(), &ad);
        if x_grad {
            xa = xa.require_grad();
        }
        let wa = Tensor::<4>::from_data(w.to_data(), &ad).require_grad();
        let ba = Tensor::<1>::from_data(bias.to_data(), &ad).require_grad();
        let ga = Tensor::<4>::from_data(g.to_data(), &ad);
        let grads = (conv(xa.clone(), wa.clone(), ba.clone()) * ga).sum().backward();
        [
            xa.grad(&grads).map(host),
            wa.grad(&grads).map(host),
            ba.grad(&grads).map(host),
        ]
    }

    /// (channels, outputs, height x width, kernel, stride, padding): 3x3 same, strided, 1x1,
    /// unpadded, padding >= kernel, stride > kernel, conv1's and the primary convolution's
    /// 9x9 (stride 1 and 2, no padding); inputs not square
    const CASES: [(usize, usize, [usize; 2], usize, usize, usize); 10] = [
        (3, 4, [7, 10], 3, 1, 1),
        (2, 5, [8, 9], 3, 2, 1),
        (4, 3, [5, 6], 1, 1, 0),
        (2, 2, [9, 7], 3, 1, 0),
        (1, 3, [11, 12], 5, 2, 1),
        (2, 3, [5, 4], 1, 1, 1),
        (2, 3, [6, 7], 3, 1, 3),
        (3, 2, [7, 8], 1, 2, 0),
        (1, 4, [14, 13], 9, 1, 0),
        (3, 4, [20, 21], 9, 2, 0),
    ];

    #[test]
    fn outputs_match_burns_conv2d_also_for_batches_unrolled_in_parts() {
        // the cases at batch 3; a small layer (16 -> 5 channels) over more images than one
        // part's columns hold; a wide layer (128 -> 128) in one part and in two
        let small = (16, 5, [32, 32], 3, 1, 1);
        let wide = (128, 128, [16, 16], 3, 1, 1);
        const { assert!(128 * 9 * 128 >= WIDE_RESULT_VALUES && 16 * 9 * 5 < WIDE_RESULT_VALUES) };
        let runs = CASES.iter().map(|&case| (3, case)).chain([
            (PART_COLUMN_VALUES / (16 * 9 * 32 * 32) + 2, small),
            (3, wide),
            (MAX_COLUMN_VALUES / (128 * 9 * 16 * 16) + 2, wide),
        ]);
        for (batch, (c, o, [h, w], k, s, p)) in runs {
            let (x, weight) = (random([batch, c, h, w]), random([o, c, k, k]));
            let burns = burn::tensor::module::conv2d(x.clone(), weight.clone(), None, options(s, p));
            let burns = (burns.dims(), host(burns));
            // inference (flex) and training (flex with autodiff)
            for device in [Device::flex(), Device::flex().autodiff()] {
                let ours = conv2d(
                    Tensor::from_data(x.to_data(), &device),
                    Tensor::from_data(weight.to_data(), &device),
                    s,
                    p,
                );
                assert_eq!(ours.dims(), burns.0);
                let d = max_rel_diff(&burns.1, &host(ours));
                let autodiff = device.is_autodiff();
                assert!(
                    d < 1e-5,
                    "{c}->{o} {h}x{w} k{k} s{s} p{p}, batch {batch}, autodiff {autodiff}: {d}"
                );
            }
        }
    }

    #[test]
    fn gradients_match_burns_conv2d() {
        for (case, (c, o, [h, w], k, s, p)) in CASES.into_iter().enumerate() {
            let (x, weight, bias) = (random([2, c, h, w]), random([o, c, k, k]), random([1, 1, 1, o]));
            let bias: Tensor<1> = bias.reshape([o]);
            let (out_h, out_w) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let g = random([2, o, out_h, out_w]);
            let ad = Device::flex().autodiff();
            let probe = Tensor::<4>::from_data(x.to_data(), &ad);
            assert!(own_conv(&probe, &weight), "case {case} takes burn's path");
            for x_grad in [true, false] {
                let inputs = (&x, &weight, &bias, &g);
                let ours = grads_of(|x, w, b| conv2d_bias(x, w, b, s, p), inputs, x_grad);
                let burns = grads_of(
                    |x, w, b| burn::tensor::module::conv2d(x, w, Some(b), options(s, p)),
                    inputs,
                    x_grad,
                );
                for (name, (a, b)) in ["input", "weight", "bias"].iter().zip(burns.iter().zip(&ours)) {
                    match (a, b) {
                        (Some(a), Some(b)) => {
                            let d = max_rel_diff(a, b);
                            assert!(d < 1e-5, "{name} grad, case {case}: {d}");
                        }
                        (None, None) => assert!(*name == "input" && !x_grad),
                        _ => panic!("{name} grad present on one side only, case {case}"),
                    }
                }
            }
        }
    }

    #[test]
    fn large_batches_are_unrolled_in_parts_with_the_same_gradients() {
        // 64 x 3 x 3 x 9 x 9 column values per image, a few more images than one part
        // holds: a small result (2 outputs) and a wide one (256)
        let (c, k, size) = (64, 3, 9);
        let per_image = c * k * k * size * size;
        for outputs in [2, 256] {
            let budget = if outputs == 2 {
                PART_COLUMN_VALUES
            } else {
                MAX_COLUMN_VALUES
            };
            let batch = budget / per_image + 3;
            let at = ConvShape::new([batch, c, size, size], [size, size], k, 1, 1);
            assert_eq!(Parts::of(at, outputs).side_by_side, outputs == 2);
            let x = random([batch, c, size, size]);
            let w = random([outputs, c, k, k]);
            let bias: Tensor<1> = random([1, 1, 1, outputs]).reshape([outputs]);
            let g = random([batch, outputs, size, size]);
            let inputs = (&x, &w, &bias, &g);
            let [_, ours, _] = grads_of(|x, w, b| conv2d_bias(x, w, b, 1, 1), inputs, false);
            let [_, burns, _] = grads_of(
                |x, w, b| burn::tensor::module::conv2d(x, w, Some(b), options(1, 1)),
                inputs,
                false,
            );
            let d = max_rel_diff(&burns.expect("burn's"), &ours.expect("ours"));
            assert!(d < 1e-4, "{outputs} outputs: {d}");
        }
    }

    #[test]
    fn non_square_kernels_take_burns_path() {
        let x = random([1, 2, 5, 5]);
        assert!(own_conv(&x, &random([3, 2, 3, 3])), "flex without autodiff, 3x3");
        let ad = Tensor::<4>::from_data(x.to_data(), &Device::flex().autodiff());
        assert!(!own_conv(&ad, &random([3, 2, 3, 1])), "a 3x1 kernel");
        let w = random([3, 2, 3, 1]);
        let ours = host(conv2d(
            ad.clone(),
            Tensor::from_data(w.to_data(), &ad.device()),
            1,
            0,
        ));
        let burns = host(burn::tensor::module::conv2d(x, w, None, options(1, 0)));
        assert!(max_rel_diff(&burns, &ours) < 1e-6);
    }
}
