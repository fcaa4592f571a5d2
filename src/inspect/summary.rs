//! What the app is told about a model: [`ModelSummary::of`] reads it off the network on the
//! worker's side, so the message types stay plain data.

use super::messages::ModelSummary;
use crate::export::ModelInfo;
use crate::model::CapsNet;
use crate::prune::capsules::w_norms as capsule_w_norms;
use crate::prune::survival;

impl ModelSummary {
    /// Summarises `model`.
    pub fn of(model: &CapsNet, info: ModelInfo) -> Self {
        let g = model.geometry();
        let c = &model.config;
        let map = survival(model).map;
        let mut w_norms = vec![0.0; map.alive.len()];
        for (i, norm) in model.capsule_indices().into_iter().zip(capsule_w_norms(model)) {
            if let Some(n) = w_norms.get_mut(i) {
                *n = norm;
            }
        }
        // the backbone, conv1 (stride 1), then the primary convolution
        let (rf, jump, offset) = c.backbone_plan().map_or((1, 1, 0), |p| p.receptive());
        Self {
            types: c.types,
            grid_h: g.grid_h,
            grid_w: g.grid_w,
            receptive_field: rf + (c.conv1_kernel - 1 + c.primary_kernel - 1) * jump,
            field_stride: c.primary_stride * jump,
            field_offset: offset,
            alive: map.alive,
            w_norms,
            info,
            input: c.input(),
            backbone: model.backbone.is_some(),
            class_dim: c.class_dim,
            model_id: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn a_primary_capsule_sees_17_by_17_input_pixels_two_apart() {
        let dev = burn::prelude::Device::flex();
        let net = CapsNet::init(&Preset::Tiny.config(), 1, &dev).unwrap();
        let s = ModelSummary::of(&net, ModelInfo::default());
        // conv1 9x9 stride 1, then 9x9 stride 2: rows 2y..2y+16 of the input
        assert_eq!((s.receptive_field, s.field_stride), (17, 2));
        assert_eq!((s.grid_h, s.grid_w, s.types), (6, 6, 8));
        // the last field ends at input column 26: stride 2 leaves conv1's last column unused
        assert_eq!((s.grid_w - 1) * s.field_stride + s.receptive_field, 27);
        assert_eq!(s.w_norms.len(), 288);
        assert!(s.w_norms.iter().all(|n| *n > 0.0));
    }

    #[test]
    fn a_backbone_widens_the_field_and_its_padding_shifts_it() {
        let dev = burn::prelude::Device::flex();
        let config = Preset::ResnetCaps.config().for_input(3, 32, 32);
        let net = CapsNet::init(&config.with_types(2), 1, &dev).unwrap();
        let s = ModelSummary::of(&net, ModelInfo::default());
        // 19 padded 3x3 convolutions (jumps 1, 2, 4), then the 3x3 primary convolution
        assert_eq!((s.receptive_field, s.field_stride, s.field_offset), (89, 4, 40));
        assert!(s.backbone);
        // the middle capsule's field is centred on the image: 3 * 4 - 40 + 89 / 2 = 16
        assert_eq!(3 * s.field_stride + s.receptive_field / 2 - s.field_offset, 16);
    }
}
