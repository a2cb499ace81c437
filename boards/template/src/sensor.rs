//! Stand-in for a sensor driver: replays 8 recorded JapaneseVowels test utterances (one per
//! speaker class 0..7). Replace it with your sensor: anything that yields frames of
//! `model::INPUT` raw values, in the units the model was trained on (the blob normalizes).

use crate::model::INPUT;

/// The frames of all utterances back to back, `INPUT` `f32` little-endian values each.
const RECORDING: &[u8] = include_bytes!("recording.bin");
/// Frames per utterance.
const LENGTHS: [usize; 8] = [19, 17, 19, 23, 13, 16, 14, 10];

const FRAME_BYTES: usize = INPUT * 4;
const _: () = {
    let mut frames = 0;
    let mut i = 0;
    while i < LENGTHS.len() {
        frames += LENGTHS[i];
        i += 1;
    }
    assert!(RECORDING.len() == frames * FRAME_BYTES);
};

/// The recorded utterances, each an iterator over its frames.
pub fn utterances() -> impl Iterator<Item = impl Iterator<Item = [f32; INPUT]>> {
    let mut start = 0;
    LENGTHS.iter().map(move |&len| {
        let frames = start..start + len;
        start += len;
        frames.map(frame)
    })
}

/// Frame `t` of the recording.
fn frame(t: usize) -> [f32; INPUT] {
    let bytes = &RECORDING[t * FRAME_BYTES..][..FRAME_BYTES];
    core::array::from_fn(|i| {
        let mut v = [0; 4];
        v.copy_from_slice(&bytes[4 * i..4 * i + 4]);
        f32::from_le_bytes(v)
    })
}
