// ESM consumer: `import` from the installed package.
import * as rk from 'rlhf-kernels';
import runCases from './cases.cjs';

runCases(rk, 'esm import');
