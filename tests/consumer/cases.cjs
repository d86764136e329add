// One op per SPEC family, called through the installed package and checked against values
// computed by hand (the expected numbers are worked out in the comments). Shared by esm.mjs and
// cjs.cjs; typed.ts checks a second op per family through the installed type declarations.
'use strict';

function close(what, got, want, tol = 1e-5) {
  if (!(Math.abs(got - want) <= tol * (1 + Math.abs(want))))
    throw new Error(`${what}: got ${got}, expected ${want}`);
}

/** rk: the package's exports; label: printed with the result. Returns the number of checks. */
module.exports = function runCases(rk, label) {
  const { tensor } = rk;
  const f32 = (a, shape) => tensor(new Float32Array(a), shape);
  const i32 = (a, shape) => tensor(new Int32Array(a), shape);
  const u8 = (a, shape) => tensor(new Uint8Array(a), shape);
  const info = rk.backends();
  if (!info.cpu) throw new Error(`${label}: native cpu backend not loaded: ${rk.nativeLoadError}`);
  const want = process.env.RK_EXPECT_ADDON;
  if (want && !String(rk.addonPath).includes(want))
    throw new Error(`${label}: loaded ${rk.addonPath}, expected a path containing '${want}'`);
  let n = 0;

  // §1 logprobs: 3 − log(e + e² + e³)
  const { logp } = rk.logprobs({ logits: f32([1, 2, 3], [1, 3]), labels: i32([2], [1]) });
  close('logprobs', logp.data[0], 3 - Math.log(Math.E + Math.E ** 2 + Math.E ** 3)), n++;

  // §2 klPenalty k3, d = 0.5: e^−0.5 − 1 + 0.5
  const { kl } = rk.klPenalty({ logp: f32([-1], [1, 1]), refLogp: f32([-1.5], [1, 1]) }, { estimator: 'k3' });
  close('klPenalty', kl.data[0], Math.exp(-0.5) - 0.5), n++;

  // §3 groupAdvantages rloo: s_i − mean of the others = [1 − 11/3, 2 − 10/3, 3 − 3, 6 − 2]
  const { advantages } = rk.groupAdvantages({ scores: f32([1, 2, 3, 6], [4]) }, { groupSize: 4, method: 'rloo' });
  [-8 / 3, -4 / 3, 0, 4].forEach((w, i) => close(`groupAdvantages[${i}]`, advantages.data[i], w)), n++;

  // §4 preferenceLoss dpo: u = (−1 − −1) − (−2 − −1) = 1, loss = −log σ(0.1) = log(1 + e^−0.1)
  const pref = rk.preferenceLoss(
    { policyChosen: f32([-1], [1]), policyRejected: f32([-2], [1]), refChosen: f32([-1], [1]), refRejected: f32([-1], [1]) },
    { type: 'dpo', beta: 0.1 },
  );
  close('preferenceLoss', pref.loss, Math.log1p(Math.exp(-0.1))), n++;

  // §5 ppoPolicyLoss, ρ = 1: ℓ = −A, token-mean of [−2, 1]
  const ppo = rk.ppoPolicyLoss({
    logp: f32([-1, -1], [1, 2]), oldLogp: f32([-1, -1], [1, 2]), advantages: f32([2, -1], [1, 2]), mask: u8([1, 1], [1, 2]),
  });
  close('ppoPolicyLoss', ppo.loss, -0.5), n++;

  // §6 packSequences ffd, capacity 5, lengths [3, 2, 4]: 4 → pack 0, 3 → pack 1, 2 → pack 1 (3+2 = 5)
  const packs = rk.packSequences({ lengths: i32([3, 2, 4], [3]) }, { capacity: 5 });
  if (String(Array.from(packs.packOf.data)) !== '1,1,0' || String(Array.from(packs.packLengths.data)) !== '4,5')
    throw new Error(`packSequences: packOf ${Array.from(packs.packOf.data)}, packLengths ${Array.from(packs.packLengths.data)}`);
  n++;

  // §7 specDecStop: 1 − 0.9^k > 0.3 first at k = 4 (0.9^3 = 0.729, 0.9^4 = 0.6561)
  const { length } = rk.specDecStop({ acceptProbs: f32([0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [1, 6]) });
  if (length.data[0] !== 4) throw new Error(`specDecStop: got ${length.data[0]}, expected 4`);
  n++;

  console.log(`${label}: ${n} ops checked on ${info.simd} (addon ${rk.addonPath})`);
  return n;
};
