// CommonJS consumer: `require` of the installed package (an ES module; Node >= 20.19 loads it
// through require(esm)).
'use strict';
const runCases = require('./cases.cjs');

runCases(require('rlhf-kernels'), 'cjs require');
