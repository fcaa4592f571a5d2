//! Large CPU buffers written in parallel without zeroing them first.
//!
//! `vec![0.0; n]` zeroes the whole buffer on the calling thread (mimalloc reuses freed
//! memory, so it cannot skip the zeroing). For a training step's im2col columns and
//! BatchNorm's output and input gradient that was a serial `memset` of up to 38 MB per
//! layer while the other core waited: about 5% of a CIFAR-10 `resnet-caps` step. Here
//! every chunk is written once, by the thread that computes it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `len` values computed `chunk` at a time in parallel: `fill(i, values)` receives chunk
/// `i` (the last may be shorter) and writes its values.
///
/// # Safety
/// When `fill` returns, every element of the chunk it was given must hold an initialised
/// value (one written with `MaybeUninit::write`); an element left as it was would be read
/// uninitialised. `chunk` must be positive unless `len` is 0.
pub(super) unsafe fn par_filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    assert!(chunk > 0 || len == 0, "par_filled: chunks of 0 values");
    let mut values = Box::<[f32]>::new_uninit_slice(len);
    values
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| fill(i, c));
    // SAFETY: the caller's `fill` wrote every value of every chunk, and the chunks cover
    // `values`
    unsafe { values.assume_init() }.into_vec()
}

/// Writes `value` into every slot of `slots`.
pub(super) fn write_all(slots: &mut [MaybeUninit<f32>], value: f32) {
    for slot in slots {
        slot.write(value);
    }
}

/// Writes `values` into `slots`, which must have the same length (it panics otherwise, so
/// that no slot is ever left unwritten).
pub(super) fn write_from(slots: &mut [MaybeUninit<f32>], values: &[f32]) {
    assert_eq!(slots.len(), values.len(), "write_from: lengths differ");
    for (slot, v) in slots.iter_mut().zip(values) {
        slot.write(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_written_in_its_place_the_last_one_shorter() {
        // SAFETY: each chunk is written whole by `write_all`
        let v = unsafe { par_filled(10, 4, |i, c| write_all(c, i as f32)) };
        assert_eq!(v, [0., 0., 0., 0., 1., 1., 1., 1., 2., 2.]);
        let src: Vec<f32> = (0..7).map(|v| v as f32).collect();
        // SAFETY: `write_from` writes all 7 values of the one chunk
        let w = unsafe { par_filled(7, 7, |_, c| write_from(c, &src)) };
        assert_eq!(w, src);
        // SAFETY: nothing to write
        assert!(unsafe { par_filled(0, 3, |_, c| write_all(c, 1.0)) }.is_empty());
    }
}
