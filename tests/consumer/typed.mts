// TypeScript consumer: compiled with `tsc --noEmit` against the installed declarations (no
// @types/node, skipLibCheck off), then emitted and run. A second op per SPEC family (cases.cjs
// checks the first), with the results' types spelled out so that a declaration that degraded to
// `any` or changed shape fails to compile; @ts-expect-error lines fail the compile if the types
// stop rejecting wrong calls.
import {
  tensor, backends, sequenceLogprobs, tokenRewards, gae, apoReference, valueLoss, attentionMask, geometricMixture,
  type Tensor, type BackendsInfo, type KlEstimator,
} from 'rlhf-kernels';

declare const console: { log(message: string): void };

function close(what: string, got: number, want: number, tol = 1e-5): void {
  if (!(Math.abs(got - want) <= tol * (1 + Math.abs(want)))) throw new Error(`${what}: got ${got}, expected ${want}`);
}
const f32 = (a: number[], shape: number[]): Tensor<'f32'> => tensor(new Float32Array(a), shape) as Tensor<'f32'>;
const u8 = (a: number[], shape: number[]): Tensor => tensor(new Uint8Array(a), shape);

const info: BackendsInfo = backends();
if (!info.cpu) throw new Error('typed: native cpu backend not loaded');

// §1 sequenceLogprobs, average: (−1 − 2)/2 over the 2 counted tokens
const seq: { sum: Tensor<'f32'>; count: Tensor<'i32'> } = sequenceLogprobs(
  { logp: f32([-1, -2, -3], [1, 3]), mask: u8([1, 1, 0], [1, 3]) },
  { average: true },
);
close('sequenceLogprobs', seq.sum.data[0], -1.5);
if (seq.count.data[0] !== 2) throw new Error(`sequenceLogprobs count: ${seq.count.data[0]}`);

// §2 tokenRewards, k1, klCoef 0.1: kl = [0.5, 0] → [−0.05, 0 + score 2]
const estimator: KlEstimator = 'k1';
const { rewards } = tokenRewards(
  { logp: f32([-1, -1], [1, 2]), refLogp: f32([-1.5, -1], [1, 2]), mask: u8([1, 1], [1, 2]), scores: f32([2], [1]) },
  { klCoef: 0.1, estimator },
);
close('tokenRewards[0]', rewards.data[0], -0.05);
close('tokenRewards[1]', rewards.data[1], 2);

// §3 gae, γ 0.9, λ 0.95: δ1 = 1 − 0.5 = 0.5 = A1; δ0 = 0.9·0.5 − 0.5 = −0.05, A0 = −0.05 + 0.855·0.5
const adv = gae(
  { rewards: f32([0, 1], [1, 2]), values: f32([0.5, 0.5], [1, 2]), mask: u8([1, 1], [1, 2]) },
  { gamma: 0.9, lambda: 0.95 },
);
close('gae advantages[0]', adv.advantages.data[0], 0.3775);
close('gae returns[0]', adv.returns.data[0], 0.8775);

// §4 apoReference, α 0.5: 1.5·(−1) − 0.5·(−2)
const { reference } = apoReference({ current: f32([-1], [1]), previous: f32([-2], [1]) }, { alpha: 0.5 });
close('apoReference', reference.data[0], -0.5);

// §5 valueLoss, V = Vold = 1, R = 3: ½·max(4, 4)
const vl: { loss: number; clipFraction: number } = valueLoss(
  { values: f32([1], [1, 1]), oldValues: f32([1], [1, 1]), returns: f32([3], [1, 1]), mask: u8([1], [1, 1]) },
  { aggregation: 'token-mean' },
);
close('valueLoss', vl.loss, 2);

// §6 attentionMask of segments [1, 1, 2]: rows allow {0}, {0, 1}, {2}
const { mask } = attentionMask({ segmentIds: tensor(new Int32Array([1, 1, 2]), [1, 3]) });
if (Array.from(mask.data).join('') !== '100110001') throw new Error(`attentionMask: ${Array.from(mask.data)}`);

// §7 geometricMixture, β 0.5: log_softmax([0, 1])
const { logp } = geometricMixture({ logits: f32([0, 0], [1, 2]), refLogits: f32([0, 2], [1, 2]) });
close('geometricMixture', logp.data[1], 1 - Math.log(1 + Math.E));

// The declarations reject wrong calls (compiled, never run):
export function rejectedByTheTypes(t: Tensor): unknown[] {
  return [
    // @ts-expect-error 'k9' is not a KlEstimator
    tokenRewards({ logp: t, refLogp: t, mask: t, scores: t }, { klCoef: 0.1, estimator: 'k9' }),
    // @ts-expect-error valueLoss requires options.aggregation
    valueLoss({ values: t, oldValues: t, returns: t, mask: t }, {}),
    // @ts-expect-error the result has no field 'gradValue'
    vl.gradValue,
    // @ts-expect-error gae requires its mask
    gae({ rewards: t, values: t }, { gamma: 1, lambda: 1 }),
  ];
}

console.log(`typed.mts: 7 ops checked on ${info.simd} (addon ${info.addonPath})`);
