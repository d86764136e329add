/**
 * `npm run bench [-- options]`: the benchmark CLI from the repository's TypeScript sources (see
 * bench/cli.ts, or `npm run bench -- --help`). With no options it is the main job: every family at
 * a cache-resident and a DRAM-resident size, every SIMD level of this CPU, `out` buffers and fresh
 * outputs, next to the js reference; it writes bench/results/cpu-latest.{json,svg} and refreshes
 * the table in bench/README.md.
 */
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
