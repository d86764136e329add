/**
 * rlhf-kernels: fast, exact kernels for the math of RLHF and preference tuning.
 * One line per op family; SPEC sections in brackets.
 */
export * from './tensor.js';
export type { CommonOptions } from './validate.js';
export { backends, setSimd, setThreads, addonPath, nativeLoadError, type Backend, type BackendsInfo } from './native.js';
// device tensors (cuda.upload, the emulated device), async calls (op.async), the call driver
export { cuda, DeviceTensor, DeviceScalar, CudaStream, hostTensor, type DeviceId, type MemoryStats } from './device.js';
export { setAsyncInlineBytes, defineOp, type Op, type OnDevice, type DeviceInputs } from './async.js';
export * from './ops/logprobs.js'; // §1 token log-probs
export * from './ops/rewards.js'; // §2 KL penalties and token-wise rewards
export * from './ops/advantages.js'; // §3 advantages
export * from './ops/preference.js'; // §4 preference losses
export * from './ops/ppo.js'; // §5 PPO losses
export * from './ops/prepack.js'; // §6 prepacking
export * from './ops/sampling.js'; // §7 sampling-side kernels
export * from './ops/linear.js'; // §8 log-probs straight from hidden states
